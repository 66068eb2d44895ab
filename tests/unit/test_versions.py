"""`Versions`: a candidate that is still loading when the node closes leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge import versions as versions_module
from edge.metrics import Metrics
from edge.settings import EdgeSettings
from edge.versions import Versions


class _Candidate:
    def __init__(self) -> None:
        self.closed: list[bool] = []
        self.smoke_started = asyncio.Event()
        self.warm = SimpleNamespace(smoke_test=self._smoke_test)

    async def _smoke_test(self, _prompts: list[str]) -> None:
        self.smoke_started.set()
        await asyncio.Event().wait()  # a smoke test that never ends

    async def close(self, *, tiers: bool = True) -> None:
        self.closed.append(tiers)


async def test_a_cancelled_load_closes_the_half_built_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def loaded(_nice: int, _load: Any, _folder: Path, **_kw: Any) -> Any:
        return SimpleNamespace(version="v-new")

    monkeypatch.setattr(versions_module, "run_lowered", loaded)
    candidate = _Candidate()
    primary: Any = SimpleNamespace(version="v-old")
    versions = Versions(EdgeSettings(), Metrics())
    versions.state = "loading"
    task = asyncio.create_task(
        versions._load(Path("unused"), primary, lambda _artifacts, _shared: candidate)  # type: ignore[arg-type, return-value]
    )
    await asyncio.wait_for(candidate.smoke_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert candidate.closed == [False]  # closed, leaving the shared tiers open
    assert versions.candidate is None
    assert versions.state == "none"
