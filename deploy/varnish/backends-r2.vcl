# The edges of region r2 (docker-compose.yml), balanced round robin, each probed on /readyz.
backend edge_r2_1 {
    .host = "edge-r2-1";
    .port = "8000";
    .probe = edge_ready;
}

backend edge_r2_2 {
    .host = "edge-r2-2";
    .port = "8000";
    .probe = edge_ready;
}

sub vcl_init {
    new edges = directors.round_robin();
    edges.add_backend(edge_r2_1);
    edges.add_backend(edge_r2_2);
}
