"""The client SDK against a served node: typed answers, ETag revalidation, retries that
wait out the real rate limiter's Retry-After, and events sent in batches."""

from __future__ import annotations

import random
import re
import urllib.request
from pathlib import Path

from client import AsyncPlaylistClient, Event, PlaylistClient

from .conftest import served


def _metric(port: int, line: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.search(re.escape(line) + r" ([0-9.e+]+)", text)
    return float(found.group(1)) if found else 0.0


async def test_the_sdk_against_a_rate_limited_node(artifact_dir: Path, tmp_path: Path) -> None:
    with served(artifact_dir, tmp_path / "data", EDGE_RATE_LIMIT="2/second") as port:
        url = f"http://127.0.0.1:{port}"
        with PlaylistClient(url, rng=random.Random(1), batch=10) as edge:
            first = edge.playlist("quiet piano for reading", n=5)
            again = edge.playlist("quiet piano for reading", n=5)
            assert (first.not_modified, again.not_modified) == (False, True)
            assert again.tracks == first.tracks
            assert len(first.tracks) == 5
            personal = edge.playlist("quiet piano for reading", n=5, user="listener-3")
            assert not personal.not_modified
            # A burst over the limit: every call succeeds, after waiting as told.
            burst = [edge.playlist(f"quiet piano take {number}", n=5) for number in range(8)]
            assert all(len(p.tracks) == 5 for p in burst)
            assert _metric(port, 'edge_rejections_total{reason="rate-limit"}') > 0
            for number in range(25):
                edge.track(
                    Event.about(
                        first, number % 5, "play", user="listener-3", event_id=f"s{number:07d}"
                    )
                )
            assert len(edge.events) == 5  # two batches of ten already went
        assert _metric(port, 'edge_events_total{outcome="accepted"}') == 25
        assert _metric(port, 'edge_requests_total{route="/v1/events",status="200"}') == 3

        async with AsyncPlaylistClient(url, rng=random.Random(2), batch=4) as aedge:
            playlist = await aedge.playlist("late night lo-fi", n=4)
            for number in range(6):
                await aedge.track(
                    Event.about(
                        playlist, number % 4, "skip", user="listener-4", event_id=f"a{number:07d}"
                    )
                )
        assert _metric(port, 'edge_events_total{outcome="accepted"}') == 31
