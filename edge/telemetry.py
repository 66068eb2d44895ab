"""OpenTelemetry traces of the request path (off by default: `EDGE_TRACES`).

The Litestar plugin opens a server span per routed request; the service adds a span per
stage under it: `cache` (with a span per tier looked at: l1, l2, global), `compute` (with
encode, search and rank), `personalize`. Encoding runs in batches on a worker thread, so
the encode, search and rank spans are drawn from the stage times the batch measured, ending
when the compute step ended. Answers served by the lean hit path (fresh L1 hits) are not
traced: they take a few microseconds and would cost more to trace than to serve.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from edge.settings import EdgeSettings

TRACER = "edge"


def provider(settings: EdgeSettings) -> TracerProvider | None:
    """The tracer provider the settings ask for; None when traces are off."""
    if settings.traces == "none":
        return None
    exporter: SpanExporter
    if settings.traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    resource = Resource.create(
        {
            "service.name": "playlist-edge",
            "edge.region": settings.region,
        }
    )
    made = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_ratio))
    )
    made.add_span_processor(BatchSpanProcessor(exporter))
    return made


_REDACTED = {
    # The query string carries the prompt (unmasked) and the client's address is personal:
    # neither goes into a span.
    "http.target": "path",
    "http.url": "path",
    "url.query": "",
    "net.peer.ip": "",
    "client.address": "",
}


def redact(span: trace.Span, scope: dict[str, Any]) -> None:
    """The server span's request attributes without the query string or the peer address
    (the ASGI middleware's server-request hook)."""
    if not span.is_recording():
        return
    path = scope.get("path", "")
    for name, keep in _REDACTED.items():
        span.set_attribute(name, path if keep == "path" else keep)


NO_TRACER = trace.NoOpTracer()
"""The tracer of a node with tracing off; code may skip span work when it is the one set."""


def tracer(made: trace.TracerProvider | None) -> trace.Tracer:
    """A tracer from `made`, or `NO_TRACER`."""
    return made.get_tracer(TRACER) if made is not None else NO_TRACER


_NO_SPAN = contextlib.nullcontext()


def span(tracer_: trace.Tracer, name: str) -> contextlib.AbstractContextManager[object]:
    """A span under the current one; with tracing off, nothing at all (even OTel's no-op
    spans cost ~10 µs each in contextvars work, several times per miss)."""
    if tracer_ is NO_TRACER:
        return _NO_SPAN
    return tracer_.start_as_current_span(name)


def stage_spans(tracer_: trace.Tracer, stages_ms: Mapping[str, float], end_ns: int) -> None:
    """Spans for stages measured elsewhere (a batch thread), laid end to end so that the
    last ends at `end_ns`, under the current span."""
    start = end_ns - int(sum(stages_ms.values()) * 1e6)
    for name, ms in stages_ms.items():
        if ms <= 0:
            continue  # not run for this request (encoded earlier, for the semantic cache)
        span = tracer_.start_span(name, start_time=start)
        start += int(ms * 1e6)
        span.end(end_time=start)
