"""A schemathesis check, loaded by `st run` through SCHEMATHESIS_HOOKS: no listener's
personal state reaches anyone else.

- A playlist asked for with a `user` is `Cache-Control: private`: no CDN or shared tier may
  keep it.
- A playlist asked for without one is not private, and the same request gets the same
  playlist (fingerprint) every time, whatever events and personal requests came in between.

The tally of what it saw goes to the JSON file named by FUZZ_TALLY, so the test can tell
the run really exercised both kinds (and events).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis


@schemathesis.check
class NoSharedPersonalAnswer:
    """Personal answers stay private; anonymous answers never change under them."""

    def __init__(self) -> None:
        self.fingerprints: dict[str, str] = {}
        self.seen: dict[str, set[str]] = {"personal": set(), "anonymous": set(), "events": set()}

    def after_response(self, ctx: Any, response: Any, case: Any) -> None:
        request = json.dumps(
            [case.method, case.path, case.query, case.body], sort_keys=True, default=str
        )
        if case.path == "/v1/events" and response.status_code == 200:
            self._saw("events", request)
        if case.path != "/v1/playlists" or response.status_code != 200:
            return
        control = response.headers.get("cache-control", [""])[0]
        doc = response.json()
        if isinstance(case.body, dict) and case.body.get("user"):
            self._saw("personal", request)
            if "private" not in control:
                raise AssertionError(f"a personal answer is not private: {control!r}")
            return
        self._saw("anonymous", request)
        if "private" in control:
            raise AssertionError(f"an anonymous answer is private: {control!r}")
        if doc.get("degraded"):
            return  # a fallback answer stands in for the real one for a few seconds
        first = self.fingerprints.setdefault(request, doc["fingerprint"])
        if first != doc["fingerprint"]:
            raise AssertionError(f"the same anonymous request got another playlist: {request}")

    def _saw(self, kind: str, request: str) -> None:
        self.seen[kind].add(request)
        tally = os.environ.get("FUZZ_TALLY")
        if tally:
            with open(tally, "w") as out:
                json.dump({k: len(v) for k, v in self.seen.items()}, out)
