"""`CircuitBreaker`: stop calling a remote tier that keeps failing, and probe it back.

Written here rather than taken from pybreaker or aiobreaker: both open after N consecutive
failures (not a failure rate over a time window) and read `time.monotonic` themselves, so
their timing cannot be driven by the injectable clock the tests use; a breaker is also only
a few dozen lines of state.

States:
  closed     calls go through; outcomes of the last `window` seconds are kept, and once at
             least `min_calls` of them failed at a rate of `failure_rate` or more, it opens;
  open       calls are refused at once for `open_for` seconds, then it turns half-open;
  half_open  up to `probes` calls go through; all of them succeeding closes it, any
             failure opens it again.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        window: float = 10.0,
        min_calls: int = 5,
        failure_rate: float = 0.5,
        open_for: float = 5.0,
        probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] = lambda _state: None,
    ) -> None:
        if not (window > 0 and min_calls > 0 and 0 < failure_rate <= 1 and open_for > 0):
            raise ValueError("breaker window, min_calls, open_for must be positive, rate in (0, 1]")
        if probes < 1:
            raise ValueError("a breaker needs at least one half-open probe")
        self.window = window
        self.min_calls = min_calls
        self.failure_rate = failure_rate
        self.open_for = open_for
        self.probes = probes
        self._clock = clock
        self._on_change = on_change
        self._outcomes: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.open_for:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go out now? A True in half-open state takes one probe slot."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probing < self.probes:
            self._probing += 1
            return True
        return False

    def abandon(self) -> None:
        """A call `allow` let through ended without an outcome (it was cancelled): free its
        half-open probe slot, judge nothing."""
        if self._state is BreakerState.HALF_OPEN:
            self._probing = max(0, self._probing - 1)

    def record(self, ok: bool) -> None:
        """Report the outcome of a call that `allow` let through."""
        if self._state is BreakerState.HALF_OPEN:
            self._probing = max(0, self._probing - 1)
            if not ok:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self.probes:
                self._move(BreakerState.CLOSED)
            return
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; it changes nothing now
        now = self._clock()
        self._outcomes.append((now, not ok))
        self._failures += not ok
        while self._outcomes and self._outcomes[0][0] <= now - self.window:
            self._failures -= self._outcomes.popleft()[1]
        calls = len(self._outcomes)
        if calls >= self.min_calls and self._failures >= self.failure_rate * calls:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._outcomes.clear()
        self._failures = self._probing = self._probe_successes = 0
        self._on_change(state)
