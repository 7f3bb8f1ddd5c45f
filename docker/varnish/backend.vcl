# The backends of docker/varnish/catalog.vcl: the two query replicas of docker-compose.yml
# (project `catalog`, so its containers are catalog-query-api-1 and -2), round robin, each
# taken out while its health check fails. A test or another deploy writes its own
# backend.vcl on `vcl_path`: one `backend` is enough.
import directors;

probe healthz {
    .url = "/healthz";
    .interval = 2s;
    .timeout = 1s;
    .window = 5;
    .threshold = 3;
}

backend query1 {
    .host = "catalog-query-api-1";
    .port = "8082";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
    .probe = healthz;
}

backend query2 {
    .host = "catalog-query-api-2";
    .port = "8082";
    .connect_timeout = 1s;
    .first_byte_timeout = 5s;
    .probe = healthz;
}

sub vcl_init {
    new replicas = directors.round_robin();
    replicas.add_backend(query1);
    replicas.add_backend(query2);
}

sub vcl_recv {
    set req.backend_hint = replicas.backend();
}
