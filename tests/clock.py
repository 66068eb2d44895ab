"""A settable clock for tests of expiry and freshness."""

from __future__ import annotations


class FakeClock:
    """Callable returning `now`; tests move it with `advance`."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
