"""Cost per 1,000 prompts from two /metrics scrapes."""

from __future__ import annotations

from loadtest.cost import Sample, between


def _sample(prompts_200: float, prompts_304: float, misses: float, cpu: float) -> Sample:
    return {
        ("edge_requests_total", (("route", "/v1/playlists"), ("status", "200"))): prompts_200,
        ("edge_requests_total", (("route", "/v1/playlists"), ("status", "304"))): prompts_304,
        ("edge_requests_total", (("route", "/v1/events"), ("status", "200"))): 999.0,
        ("edge_miss_compute_seconds_count", ()): misses,
        ("process_cpu_seconds_total", ()): cpu,
        ("edge_served_bytes_total", ()): prompts_200 * 1000,
        ("edge_tier_written_bytes_total", (("tier", "l1"),)): misses * 2000,
    }


def test_the_change_over_a_run_per_thousand_prompts() -> None:
    cost = between(_sample(100, 0, 10, 5.0), _sample(1900, 200, 110, 8.0))
    assert (cost.prompts, cost.misses) == (2000, 100)  # playlists only, 304s included
    assert cost.hit_ratio == 0.95
    assert cost.per_thousand(cost.cpu_seconds) == 1.5
    assert cost.per_thousand(cost.served_bytes) == 900_000
    assert cost.written_bytes == {"l1": 200_000}
    text = "\n".join(cost.markdown())
    assert "at a 95.0% hit ratio" in text
    assert "| bytes written to l1 | 100,000 |" in text
