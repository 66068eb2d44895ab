"""The `tier` fixture: every cache tier, each behind the same contract and a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cache.base import Tier
from cache.memory import MemoryTier
from tests.clock import FakeClock

TierFactory = Callable[[FakeClock], Tier]

FACTORIES: dict[str, TierFactory] = {
    "memory": lambda clock: MemoryTier(1 << 20, clock=clock),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
def tier(request: pytest.FixtureRequest, clock: FakeClock) -> Tier:
    return FACTORIES[request.param](clock)
