"""Circuit breaker states, driven by a fake clock."""

from __future__ import annotations

import pytest

from cache.breaker import BreakerState, CircuitBreaker
from tests.clock import FakeClock


def _breaker(clock: FakeClock, **kw: object) -> CircuitBreaker:
    params: dict[str, object] = {
        "window": 10.0, "min_calls": 4, "failure_rate": 0.5, "open_for": 5.0, "probes": 2,
    }  # fmt: skip
    params.update(kw)
    return CircuitBreaker(clock=clock, **params)  # type: ignore[arg-type]


def _calls(breaker: CircuitBreaker, outcomes: str) -> None:
    for outcome in outcomes:
        assert breaker.allow()
        breaker.record(outcome == "+")


def test_failures_below_min_calls_keep_it_closed() -> None:
    breaker = _breaker(FakeClock())
    _calls(breaker, "---")
    assert breaker.state is BreakerState.CLOSED


def test_failure_rate_at_threshold_opens_and_refuses() -> None:
    breaker = _breaker(FakeClock())
    _calls(breaker, "+-+-")
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_failure_rate_under_threshold_stays_closed() -> None:
    breaker = _breaker(FakeClock())
    _calls(breaker, "+++-+++-")
    assert breaker.state is BreakerState.CLOSED


def test_old_outcomes_leave_the_window() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _calls(breaker, "---")
    clock.advance(10)  # those three failures are now outside the window
    _calls(breaker, "+")
    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_open_period_lets_probes_through() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _calls(breaker, "----")
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()  # only `probes` calls at a time


def test_successful_probes_close_it() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _calls(breaker, "----")
    clock.advance(5)
    _calls(breaker, "++")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_a_failed_probe_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _calls(breaker, "----")
    clock.advance(5)
    _calls(breaker, "-")
    assert breaker.state is BreakerState.OPEN
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_state_changes_are_reported() -> None:
    clock = FakeClock()
    seen: list[BreakerState] = []
    breaker = _breaker(clock, probes=1, on_change=seen.append)
    _calls(breaker, "----")
    clock.advance(5)
    _calls(breaker, "+")
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.mark.parametrize(
    "bad", [{"window": 0}, {"min_calls": 0}, {"failure_rate": 0}, {"failure_rate": 1.5},
            {"open_for": -1}, {"probes": 0}]
)  # fmt: skip
def test_nonsense_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"breaker|probe"):
        _breaker(FakeClock(), **bad)


def test_an_abandoned_probe_frees_its_slot() -> None:
    """A probe cancelled from outside neither closes nor reopens, and does not lock it."""
    clock = FakeClock()
    breaker = _breaker(clock, probes=1)
    _calls(breaker, "----")
    clock.advance(5)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.abandon()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
