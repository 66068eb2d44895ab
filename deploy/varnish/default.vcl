# Varnish 7 in front of a region's edge nodes (Debian: apt-get install varnish varnish-modules).
#
#   varnishd -a :6081 -f /etc/varnish/default.vcl -s malloc,256m
#
# backends.vcl, beside this file, names the region's edges (see backends-r1.vcl). What this
# configuration does beyond Varnish's built-in VCL:
# - lifetimes from the node: TTL is s-maxage minus Age; grace is stale-if-error, so a stale
#   copy can stand in for a failing origin that long; within stale-while-revalidate a stale
#   copy is served while a background fetch (If-None-Match, usually a 304) refreshes it;
#   past it a request waits for a fresh answer, and gets the stale copy only if the origin
#   fails (a connection error, a 5xx) or its probe says it is down;
# - Surrogate-Key becomes xkey, so PURGE with an `xkey` header (hard) or `xkey-softpurge`
#   (stale, refreshed on next use) drops answers by track, prompt, version or request key;
# - the query string is normalized (parameters sorted, `+` as `%20`), so equivalent URLs
#   share one object; the node redirects (308) what is still not canonical;
# - answers to keyed requests are kept apart by key: the node sends Vary: X-API-Key and
#   the key is hashed too, so a request without a key never gets a keyed answer.
vcl 4.1;

import std;
import xkey;
import directors;

probe edge_ready {
    .url = "/readyz";
    .interval = 1s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
}

# Who may purge: loopback and private networks (the edges and operators).
acl purgers {
    "127.0.0.1";
    "::1";
    "10.0.0.0"/8;
    "172.16.0.0"/12;
    "192.168.0.0"/16;
}

include "backends.vcl";

sub vcl_recv {
    set req.backend_hint = edges.backend();
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey) {
            set req.http.n-gone = xkey.purge(req.http.xkey);
        } elsif (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        } else {
            return (synth(400, "PURGE needs an xkey or xkey-softpurge header"));
        }
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    if (req.restarts == 0) {
        unset req.http.x-edge-sync;
        unset req.http.x-edge-stale-ok;
        if (req.url ~ "\?") {
            set req.url = std.querysort(regsuball(req.url, "\+", "%20"));
        }
    }
    if (!std.healthy(req.backend_hint)) {
        set req.http.x-edge-stale-ok = "1";  # the origin is down: stale copies are welcome
    } elsif (req.http.x-edge-sync && !req.http.x-edge-stale-ok) {
        set req.grace = 0s;  # past stale-while-revalidate: fetch now
    }
    if (req.url ~ "^/v1/playlists" && (req.method == "GET" || req.method == "HEAD")) {
        unset req.http.Cookie;
        unset req.http.Authorization;
        return (hash);
    }
}

sub vcl_hash {
    # Belt and braces beside the node's Vary: a keyed answer never matches a keyless request.
    if (req.http.X-API-Key) {
        hash_data(req.http.X-API-Key);
    }
}

sub vcl_hit {
    # A stale copy past stale-while-revalidate is for a failing origin only.
    if (obj.ttl <= 0s && !req.http.x-edge-stale-ok &&
        obj.ttl + std.duration(obj.http.x-edge-swr + "s", 0s) <= 0s) {
        set req.http.x-edge-sync = "1";
        return (restart);
    }
}

sub vcl_backend_response {
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    if (beresp.http.Cache-Control ~ "stale-if-error=\d+") {
        set beresp.grace = std.duration(
            regsub(beresp.http.Cache-Control, ".*stale-if-error=(\d+).*", "\1") + "s", 0s);
    }
    set beresp.http.x-edge-swr = "0";
    if (beresp.http.Cache-Control ~ "stale-while-revalidate=\d+") {
        set beresp.http.x-edge-swr =
            regsub(beresp.http.Cache-Control, ".*stale-while-revalidate=(\d+).*", "\1");
    }
    # Kept past grace for conditional refreshes (If-None-Match, answered by a 304).
    set beresp.keep = 10m;
    if (beresp.status >= 500 && (bereq.is_bgfetch || bereq.http.x-edge-sync)) {
        return (abandon);  # a failed refresh keeps the stale copy
    }
    # A stale answer the origin is revalidating: kept a second, not as hit-for-miss.
    if (beresp.ttl <= 0s && beresp.status == 200 && beresp.http.X-Cache == "STALE" &&
        beresp.http.Cache-Control ~ "public") {
        set beresp.ttl = 1s;
        return (deliver);
    }
}

sub vcl_synth {
    if (resp.status == 503 && req.http.x-edge-sync && !req.http.x-edge-stale-ok) {
        set req.http.x-edge-stale-ok = "1";
        return (restart);
    }
}

sub vcl_deliver {
    if (resp.status >= 500 && req.http.x-edge-sync && !req.http.x-edge-stale-ok) {
        set req.http.x-edge-stale-ok = "1";  # the origin failed: a stale copy, if kept
        return (restart);
    }
    if (obj.uncacheable) {
        set resp.http.X-CDN-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-CDN-Cache = "HIT";
    } else {
        set resp.http.X-CDN-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.x-edge-swr;
}
