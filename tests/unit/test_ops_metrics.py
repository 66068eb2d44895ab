"""The metrics the Prometheus rules and the dashboard are built on: answer latency by X-Cache
tier, and how late each event consumer group handles events (frozen time)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge.events import EventsPipeline
from edge.metrics import Metrics
from edge.settings import EdgeSettings
from regional.events import Delivery, Event
from tests.clock import FakeClock


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_answers_are_timed_by_tier_and_other_requests_are_not() -> None:
    """A request with an X-Cache lands in edge_answer_seconds under that tier (a 40 ms hit is
    within the 100 ms bucket, a 300 ms miss is not); one without it only in the route's."""
    metrics = Metrics()
    metrics.request("/v1/playlists", 200, 0.04, "HIT-L1")
    metrics.request("/v1/playlists", 200, 0.3, "MISS")
    metrics.request("/metrics", 200, 0.001)
    samples = _samples(metrics)
    assert samples["edge_answer_seconds_count", (("tier", "HIT-L1"),)] == 1
    assert samples["edge_answer_seconds_bucket", (("le", "0.1"), ("tier", "HIT-L1"))] == 1
    assert samples["edge_answer_seconds_bucket", (("le", "0.1"), ("tier", "MISS"))] == 0
    assert samples["edge_request_seconds_count", (("route", "/metrics"),)] == 1
    assert sum(v for k, v in samples.items() if k[0] == "edge_answer_seconds_count") == 2


def _event(received_ms: int) -> Event:
    return Event(
        event_id="e-00000001",
        type="skip",
        playlist="p",
        prompt_key="k",
        track_id="t",
        position=0,
        dwell_ms=1000,
        client_ms=received_ms,
        user="u",
        prompt="",
        region="r1",
        received_ms=received_ms,
    )


async def test_event_lag_is_the_age_of_the_oldest_event_a_group_handled(tmp_path: Path) -> None:
    """A batch handled 90 s after its oldest event arrived sets that group's lag to 90 s; a
    batch handled at once sets it back to 0; the other group's lag is its own."""
    clock = FakeClock(1_000_000.0)
    settings = EdgeSettings(data_dir=str(tmp_path), events_url="", l2_url="", archive_dir="none")
    metrics = Metrics()
    pipeline = EventsPipeline.build(settings, metrics, "node-1", clock)
    assert pipeline is not None
    session, labels = pipeline.consumers
    now_ms = int(clock() * 1000)
    await session.handle(
        [Delivery(0, "1-0", _event(now_ms - 90_000)), Delivery(0, "2-0", _event(now_ms - 5_000))]
    )
    await labels.handle([Delivery(0, "2-0", _event(now_ms - 5_000))])
    samples = _samples(metrics)
    assert samples["edge_event_lag_seconds", (("group", "session"),)] == 90
    assert samples["edge_event_lag_seconds", (("group", "labels"),)] == 5
    clock.advance(1.0)
    await session.handle([Delivery(0, "3-0", _event(int(clock() * 1000)))])
    assert _samples(metrics)["edge_event_lag_seconds", (("group", "session"),)] == 0
    await pipeline.close()
