"""Warming a version before it takes traffic: warm-up runs, the smoke test, and prewarm of
the region's popular answers (leaving out prompts whose playlists listeners mostly skip)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from edge.errors import Overloaded
from models.errors import ModelError
from regional.consumers import LabelStore
from regional.errors import StoreUnavailable

if TYPE_CHECKING:
    from edge.service import PlaylistService


class Warmer:
    """Warms one service: its miss path, its cache."""

    def __init__(self, service: PlaylistService, labels: LabelStore | None = None) -> None:
        self.service = service
        self.labels = labels
        """The region's prompt-quality labels (None: events are off)."""

    async def warm_up(self, prompts: list[str]) -> None:
        """Run prompts through the miss path (not cached) so first requests are not slow."""
        await self._generate(prompts)

    async def smoke_test(self, prompts: list[str]) -> None:
        """Compute a playlist for each prompt (not cached); ModelError if one comes back
        empty: a version that cannot answer must not take traffic."""
        await self._generate(prompts, require=True)

    async def _generate(self, prompts: list[str], *, require: bool = False) -> None:
        service = self.service
        for prompt in prompts:
            intent = service.artifacts.parser.parse(prompt)
            with service.compute.admit():
                playlist, _ = await service.compute.generate(
                    intent, service.settings.default_length
                )
            if require and not playlist.ids:
                raise ModelError(f"{service.version} answered {prompt!r} with no tracks")

    async def mostly_rejected(self, prompt_key: str) -> bool:
        """Do the region's labels say listeners mostly skip this prompt's playlists?"""
        if self.labels is None:
            return False
        try:
            async with asyncio.timeout(self.service.settings.remote_timeout_ms / 1000):
                return (await self.labels.get(prompt_key)).mostly_rejected()
        except (StoreUnavailable, TimeoutError):
            return False

    async def prewarm(self, wanted: list[tuple[str, bytes]], seconds: float) -> dict[str, int]:
        """Bring the region's popular answers into L1: from a lower tier if one has them
        (the lookup promotes them), else computed again from their request description.

        Keys of another artifact version are rebuilt under this version's key. Stops at the
        deadline, or when compute is overloaded.
        """
        service = self.service
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        done = {"promoted": 0, "computed": 0, "skipped": 0, "rejected": 0}
        for _key, raw in wanted:
            if loop.time() >= deadline:
                break
            parsed = service.spec_intent(raw)
            if parsed is None:
                done["skipped"] += 1
                continue
            spec, intent, key = parsed
            if await self.mostly_rejected(intent.prompt_key()):
                done["rejected"] += 1  # listeners skip its playlists: not worth a warm slot
                continue
            if await service.fresh(key):
                done["promoted"] += 1
                continue
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await service.miss(key, intent, spec.n)
            except (Overloaded, TimeoutError):
                break
            done["computed"] += 1
        return done
