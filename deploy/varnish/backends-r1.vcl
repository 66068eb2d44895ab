# The edges of region r1 (docker-compose.yml), balanced round robin, each probed on /readyz.
backend edge_r1_1 {
    .host = "edge-r1-1";
    .port = "8000";
    .probe = edge_ready;
}

backend edge_r1_2 {
    .host = "edge-r1-2";
    .port = "8000";
    .probe = edge_ready;
}

sub vcl_init {
    new edges = directors.round_robin();
    edges.add_backend(edge_r1_1);
    edges.add_backend(edge_r1_2);
}
