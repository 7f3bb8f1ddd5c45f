# The backend of docker/varnish/catalog.vcl in docker-compose.yml: the HAProxy balancer,
# which spreads the query replicas' traffic and takes a failing one out itself. Varnish is
# the CDN in front of it (the original design's CloudFront before the ALB). A test or another
# deploy writes its own backend.vcl on `vcl_path`: one `backend` is enough.
probe readyz {
    .url = "/readyz";
    .interval = 2s;
    .timeout = 1s;
    .window = 5;
    .threshold = 3;
}

backend balancer {
    .host = "haproxy";
    .port = "8080";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
    .probe = readyz;
}
