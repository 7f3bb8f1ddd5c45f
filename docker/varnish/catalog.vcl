# The catalog's edge cache: Varnish in front of the query replicas, purged by events.
#
# Every cacheable answer of the query API carries its surrogate keys in `Surrogate-Key`
# (space-separated: `catalog`, `product:<id>`, `scope:<all|category slug>`, `bestsellers`,
# `categories`). The catalog processes started with `--edge-purge-url` send, after their own
# cache dropped what an event changed, `PURGE /` with `xkey-purge: <keys>`; this VCL removes
# every object tagged with one of those keys (vmod xkey, Debian's varnish-modules). So a
# write is visible at the edge as soon as in the query processes' own caches, with no TTL
# guesswork: the TTL below is only the safety net for a lost purge.
#
# `X-Min-Position` (read-your-writes) and `Authorization` (an admin's view) bypass the cache.
# The backend comes from `backend.vcl` next to this file (or on `vcl_path`): a deploy writes
# its own, see docker/varnish/backend.vcl.
vcl 4.1;

import std;
import xkey;

include "backend.vcl";

# Who may purge: the catalog processes (loopback and the private networks a fleet runs on).
acl purgers {
    "127.0.0.0"/8;
    "::1";
    "10.0.0.0"/8;
    "172.16.0.0"/12;
    "192.168.0.0"/16;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "purging is for the catalog processes"));
        }
        if (!req.http.xkey-purge) {
            return (synth(400, "PURGE needs an xkey-purge header naming surrogate keys"));
        }
        set req.http.x-purged = xkey.purge(req.http.xkey-purge);
        return (synth(200, "purged " + req.http.x-purged + " objects"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Read-your-writes asks the views themselves; an admin sees drafts.
    if (req.http.X-Min-Position || req.http.Authorization) {
        return (pass);
    }
    if (req.url !~ "^/api/(products|categories)([/?]|$)") {
        return (pass);
    }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_response {
    if (!beresp.http.Surrogate-Key || beresp.http.Cache-Control ~ "(private|no-store)"
        || beresp.status >= 500) {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    set beresp.http.xkey = beresp.http.Surrogate-Key;
    # Purges keep the object exact; the TTL only bounds what a lost purge could leave behind.
    set beresp.ttl = 5m;
    # Serve the old object while a new one is fetched, and while the backends fail.
    set beresp.grace = 1m;
    return (deliver);
}

sub vcl_deliver {
    unset resp.http.xkey;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}

sub vcl_synth {
    if (req.method == "PURGE") {
        set resp.http.Content-Type = "text/plain";
        synthetic(resp.reason + {"
"});
        return (deliver);
    }
}
