"""`Versions`: which artifact versions answer — the primary, and a candidate that takes a
share of traffic, is compared in the shadow of the primary's misses, is promoted or rolled
back.

    load_candidate → (smoke test, prewarm) → ready → percent / shadow → promote ⇄ rollback

A candidate shares the primary's cache tiers and listener state and has its own compute.
Assignment to the candidate hashes (experiment, subject), so a listener (else a prompt)
stays on one side while the share grows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import xxhash

from edge import shadow
from edge.compute import run_lowered
from edge.errors import Overloaded, VersionConflict
from edge.metrics import Metrics
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from edge.shadow import Agreement
from models import artifacts as model_artifacts
from models.artifacts import Artifacts, Manifest
from models.errors import ModelError
from models.intent import Intent
from models.ranker import Playlist

log = logging.getLogger("edge.versions")

WARMUP_PROMPTS = ["rainy sunday morning jazz", "no vocals, deep focus", "upbeat running mix"]

Assemble = Callable[[Artifacts, PlaylistService], PlaylistService]
"""Makes a candidate service over new artifacts that shares the given primary's parts."""


class Versions:
    """The primary service, the candidate version and the share of traffic it takes."""

    def __init__(
        self, settings: EdgeSettings, metrics: Metrics, *, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.primary: PlaylistService | None = None
        self.candidate: PlaylistService | None = None
        self.state = "none"
        """none, loading, ready (the candidate can take traffic) or failed."""
        self.error = ""
        self.experiment = "rollout"
        self.percent = 0.0
        """Share of subjects (listeners, else prompts) the candidate answers, 0-100."""
        self.shadow = 0.0
        """Share of the primary's misses the candidate also answers, to compare (0-1)."""
        self.agreement: dict[str, Agreement] = {}
        """Shadow comparisons so far, by slot kind."""
        self.previous = False
        """The candidate slot holds the version served before the last promotion."""
        self.task: asyncio.Task[None] | None = None
        self._shadows: set[asyncio.Task[None]] = set()
        self._rng = rng or random.Random()
        """Picks the misses shadowed (the share is what matters, not which ones)."""

    def assigned(self, subject: str) -> bool:
        """Whether `subject` is in the candidate's share: a hash of (experiment, subject)
        against the percentage, so an assignment is stable while the share grows."""
        if self.percent <= 0:
            return False
        bucket = xxhash.xxh3_64_intdigest(f"{self.experiment}\x00{subject}".encode()) % 10_000
        return bucket < self.percent * 100

    def route(self, primary: PlaylistService, subject: str) -> PlaylistService:
        """The service that answers for `subject` (a user token, else a prompt key)."""
        if self.candidate is not None and self.assigned(subject):
            return self.candidate
        return primary

    def describe(self) -> dict[str, object]:
        primary, candidate = self.primary, self.candidate
        return {
            "primary": primary.version if primary is not None else None,
            "candidate": candidate.version if candidate is not None else None,
            "state": self.state,
            "error": self.error or None,
            "experiment": self.experiment,
            "percent": self.percent,
            "shadow": self.shadow,
            "agreement": {kind: a.report() for kind, a in sorted(self.agreement.items())},
        }

    # -- loading a candidate ---------------------------------------------------------------

    def load_candidate(self, folder: Path, primary: PlaylistService, assemble: Assemble) -> None:
        """Start loading `folder` as the candidate version, in the background."""
        if self.state == "loading":
            raise VersionConflict("a candidate version is loading already")
        if self.candidate is not None:
            raise VersionConflict("a candidate version is loaded: promote or unload it first")
        manifest = model_artifacts.read_manifest(folder)  # ArtifactError: not a version
        needed = _footprint(primary.artifacts.manifest) + _footprint(manifest)
        bound = self.settings.versions_memory_mb * 1024 * 1024
        if needed > bound:
            raise VersionConflict(
                f"two versions would need about {needed >> 20} MB, over EDGE_VERSIONS_MEMORY_MB"
                f" ({self.settings.versions_memory_mb} MB)"
            )
        self.state, self.error = "loading", ""
        self.task = asyncio.create_task(self._load(folder, primary, assemble))

    async def _load(self, folder: Path, primary: PlaylistService, assemble: Assemble) -> None:
        started = time.perf_counter()
        candidate = None
        try:
            artifacts = await run_lowered(
                self.settings.compute_nice,
                model_artifacts.load,
                folder,
                encoder_threads=self.settings.encoder_threads,
                check=True,  # checksums, whatever verify_artifacts says
            )
            if artifacts.version == primary.version:
                raise VersionConflict(f"{artifacts.version} is the version already served")
            candidate = assemble(artifacts, primary)
            await candidate.warm.smoke_test(WARMUP_PROMPTS)
            wanted = [(c.key, c.spec) for c in primary.popularity.top(self.settings.prewarm_top)]
            if wanted:  # the primary's popular prompts, answered by this version before it serves
                await candidate.warm.prewarm(wanted, self.settings.prewarm_seconds)
        except asyncio.CancelledError:  # the node is closing: leave nothing half-built
            self.state = "none"
            if candidate is not None:
                await candidate.close(tiers=False)
            raise
        except Exception as exc:  # noqa: BLE001 - the loading task's top: report, never hang
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("candidate version failed to load", extra={"error": self.error})
            if candidate is not None:
                await candidate.close(tiers=False)
            return
        self.candidate, self.state = candidate, "ready"
        # The configured share and shadow ratio apply from now (the admin endpoint changes them).
        self.percent = self.settings.split_percent
        self.experiment = self.settings.split_experiment
        self.shadow = self.settings.shadow_ratio
        log.info(
            "candidate version ready",
            extra={
                "version": candidate.version,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    # -- promote, roll back, unload ----------------------------------------------------------

    def promote(self) -> None:
        """The candidate serves everyone; the old primary stays loaded for a rollback."""
        if self.candidate is None:
            raise VersionConflict("no candidate version to promote")
        self._swap()
        self.previous = True
        log.warning("version promoted", extra={"version": self._primary().version})

    def rollback(self) -> None:
        """Undo the last step: a split goes back to 0 %; after a promotion, the previous
        primary (kept loaded since) serves again."""
        if self.percent > 0:
            self.percent = 0.0
        elif self.previous:
            self._swap()
            self.previous = False
        else:
            raise VersionConflict("nothing to roll back: no split and no promotion")
        log.warning("rolled back", extra={"version": self._primary().version})

    def _primary(self) -> PlaylistService:
        assert self.primary is not None
        return self.primary

    def _swap(self) -> None:
        """Primary and candidate trade places, atomically for requests: each holds the
        service it started with until it is answered."""
        old, new = self._primary(), self.candidate
        assert new is not None
        self.primary, self.candidate = new, old
        new.variant, old.variant = "primary", "candidate"
        self.percent = 0.0

    async def unload(self) -> None:
        """Drop the candidate version once requests it is answering are done."""
        candidate, self.candidate, self.percent = self.candidate, None, 0.0
        self.state, self.previous = "none", False
        if candidate is not None:
            for _ in range(200):  # at most 10 s for in-flight misses
                if candidate.compute.in_flight == 0:
                    break
                await asyncio.sleep(0.05)
            await candidate.close(tiers=False)

    # -- the shadow comparison -------------------------------------------------------------

    def shadow_miss(
        self, served_by: PlaylistService, intent: Intent, n: int, served: Playlist
    ) -> None:
        """Told of every miss a service computed: maybe have the candidate answer the
        primary's misses too, off the request path."""
        candidate = self.candidate
        if served_by is not self.primary or candidate is None:
            return
        if self.shadow <= 0 or self._rng.random() >= self.shadow:
            return
        task = asyncio.create_task(self._compare(candidate, intent, n, served))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _compare(
        self, candidate: PlaylistService, intent: Intent, n: int, served: Playlist
    ) -> None:
        try:
            with candidate.compute.admit():
                other, _ = await candidate.compute.generate(intent, n)
        except (Overloaded, ModelError, TimeoutError):
            return  # the candidate is busy or failing: no comparison this time
        slot_kind = shadow.kind(intent)
        agreed = shadow.overlap(served.ids, other.ids)
        correlation = shadow.rank_correlation(served.ids, other.ids)
        self.agreement.setdefault(slot_kind, Agreement()).add(agreed, correlation)
        self.metrics.shadow_overlap.labels(slot_kind).observe(agreed)
        self.metrics.shadow_correlation.labels(slot_kind).observe(correlation)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """Background work to cancel at shutdown: a loading candidate, shadow comparisons."""
        return [*([self.task] if self.task is not None else []), *self._shadows]


def _footprint(manifest: Manifest) -> int:
    """Bytes an artifact version takes in memory, about: the size of its files."""
    return sum(entry.bytes for entry in manifest.files.values())
