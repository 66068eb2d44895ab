"""OpenTelemetry traces of the request path, read back from an in-memory exporter."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from edge.app import create_app
from edge.logs import JsonFormatter
from edge.settings import EdgeSettings
from models.artifacts import Artifacts


def _tree(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> dict[str, object]:
    """{name: children's tree} under `root`, children in start order."""
    children = sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id),
        key=lambda s: s.start_time or 0,
    )
    return {child.name: _tree(spans, child) for child in children}


async def test_a_miss_has_a_span_per_stage(loaded: Artifacts, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = EdgeSettings(warmup=False, verify_artifacts=False, data_dir=str(tmp_path / "data"))
    app = create_app(settings, artifacts=loaded, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://e") as c:
        await app.node.wait_ready()
        exporter.clear()
        miss = await c.get("/v1/playlists?q=rainy+cafe+jazz+alice@example.com&n=5")
        assert miss.headers["x-cache"] == "MISS"
        spans = exporter.get_finished_spans()
        for span in spans:  # the prompt is in the query string, which no span keeps
            assert "rainy" not in str(dict(span.attributes or {})), span.name
        root = next(s for s in spans if s.parent is None)
        assert root.kind == trace.SpanKind.SERVER
        assert root.attributes is not None
        assert root.attributes["edge.tier"] == "MISS"
        assert root.attributes["edge.version"] == loaded.version
        assert root.attributes["edge.variant"] == "primary"
        tree = _tree(spans, root)
        assert tree["cache"] == {"l1": {}, "global": {}}
        assert tree["compute"] == {"encode": {}, "search": {}, "rank": {}}
        tiers = {s.name: (s.attributes or {}).get("edge.outcome") for s in spans}
        assert (tiers["l1"], tiers["global"]) == ("miss", "miss")
        compute = next(s for s in spans if s.name == "compute")
        metrics = (await c.get("/metrics")).text
        assert 'edge_stage_seconds_count{stage="encode"} 1.0' in metrics  # the semantic path's
        assert "edge_miss_compute_seconds_count 1.0" in metrics
        for stage in ("encode", "search", "rank"):
            span = next(s for s in spans if s.name == stage)
            assert compute.start_time <= span.start_time <= span.end_time <= compute.end_time  # type: ignore[operator]

        exporter.clear()
        personal = await c.post(
            "/v1/playlists",
            json={
                "schema_version": 1,
                "prompt": "rainy cafe jazz alice@example.com",
                "n": 5,
                "user": "u-1",
            },
        )
        assert personal.status_code == 200
        spans = exporter.get_finished_spans()
        root = next(s for s in spans if s.parent is None)
        assert "personalize" in _tree(spans, root)
        assert (root.attributes or {})["edge.tier"] == "HIT-L1"


def test_log_lines_inside_a_span_carry_its_trace_id() -> None:
    provider = TracerProvider()
    record = logging.LogRecord("edge.test", logging.INFO, __file__, 1, "inside", None, None)
    with provider.get_tracer("t").start_as_current_span("request") as span:
        line = JsonFormatter().format(record)
        trace_id = trace.format_trace_id(span.get_span_context().trace_id)
    assert f'"trace_id":"{trace_id}"' in line
    assert "trace_id" not in JsonFormatter().format(record)  # outside any span
