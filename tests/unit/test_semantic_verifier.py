"""Online verification of semantic hits: sampled, bounded, idle-only; thresholds move on
evidence and a wrong hit is replaced (fakes for compute and caches)."""

from __future__ import annotations

import asyncio

import numpy as np

from cache.semantic import SemanticIndex
from edge.metrics import Metrics
from edge.semantic import Sample, Verifier
from models.catalog import Catalog
from models.intent import Intent, Slots
from models.ranker import Playlist
from models.synthetic import synthetic_catalog

CATALOG: Catalog = synthetic_catalog(200, seed=3)
INTENT = Intent(text="jazz", query_text="jazz", slots=Slots(), words=())


def _playlist(rows: list[int]) -> Playlist:
    return Playlist.of(CATALOG, rows, [0.0] * len(rows), "v1")


class World:
    def __init__(self, fresh: list[int], *, rate: float = 1.0, queue: int = 4) -> None:
        self.index = SemanticIndex(4, capacity=8, threshold=0.8)
        self.metrics = Metrics()
        self.fresh = fresh
        self.replaced: list[str] = []
        self.busy = False
        self.recomputed = 0
        self.verifier = Verifier(
            self.index,
            CATALOG,
            self.metrics,
            recompute=self.recompute,
            replace=self.replace,
            idle=lambda: not self.busy,
            rate=rate,
            queue_size=queue,
            target=0.1,
            min_evidence=30,
        )

    async def recompute(self, intent: Intent, n: int) -> Playlist:
        self.recomputed += 1
        return _playlist(self.fresh)

    async def replace(self, key: str, intent: Intent, n: int, playlist: Playlist) -> None:
        self.replaced.append(key)


def _sample(kind: str, served: list[int], key: str = "b") -> Sample:
    return Sample(kind, key, INTENT, 10, tuple(served), "text")


async def test_a_wrong_hit_is_replaced_and_tightens_its_bucket() -> None:
    world = World(fresh=list(range(10)))
    assert await world.verifier.verify(_sample("hit", list(range(100, 110)))) is False
    assert world.replaced == ["b"]
    assert world.index.threshold_of("text") == 0.81
    report = world.verifier.report()["text"]
    assert report.threshold == 0.81
    assert report.verified_hits == 0  # evidence starts again after a change


async def test_a_right_hit_keeps_the_threshold() -> None:
    world = World(fresh=list(range(10)))
    assert await world.verifier.verify(_sample("hit", list(range(10)))) is True
    assert world.replaced == []
    assert world.index.threshold_of("text") == 0.8
    assert world.verifier.report()["text"].verified_hits == 1


async def test_enough_right_near_misses_loosen_the_bucket() -> None:
    world = World(fresh=list(range(10)))
    for _ in range(29):
        await world.verifier.verify(_sample("near", list(range(10))))
    assert world.index.threshold_of("text") == 0.8  # 0 wrong of 29: bound 0.098, too few
    await world.verifier.verify(_sample("near", list(range(10))))
    assert world.index.threshold_of("text") == 0.79


async def test_sampling_and_the_bounded_queue() -> None:
    world = World(fresh=list(range(10)), queue=2)
    for _ in range(5):
        world.verifier.offer(_sample("hit", list(range(10))))
    assert len(world.verifier._queue) == 2
    dropped = world.metrics.semantic_dropped._value.get()
    assert dropped == 3
    never = World(fresh=list(range(10)), rate=0.0)
    never.verifier.offer(_sample("hit", list(range(10))))
    assert len(never.verifier._queue) == 0


async def test_checks_wait_for_idle_compute() -> None:
    world = World(fresh=list(range(10)))
    world.busy = True
    task = asyncio.create_task(world.verifier.run(poll=0.01))
    world.verifier.offer(_sample("hit", list(range(10))))
    await asyncio.sleep(0.1)
    assert world.recomputed == 0  # a miss is being computed: nothing runs beside it
    world.busy = False
    for _ in range(100):
        if world.recomputed:
            break
        await asyncio.sleep(0.01)
    assert world.recomputed == 1
    task.cancel()


def test_lookup_reports_near_misses_and_honours_bucket_thresholds_and_veto() -> None:
    index = SemanticIndex(
        4,
        capacity=8,
        threshold=0.95,
        thresholds={"genre": 0.7},
        near_margin=0.2,
        veto=lambda a, b: ("night" in a) != ("night" in b),
    )
    a = np.array([1, 0.5, 0, 0], dtype=np.float32)
    b = np.array([1, 0.9, 0, 0], dtype=np.float32)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)  # cosine 0.95
    index.add(a, "ka", "s", "a", words=("day",), rows=(1, 2, 3))
    assert index.lookup(b, "s", "genre", ("day",)).hit is not None
    found = index.lookup(b, "s", "mood", ("day",))
    assert found.hit is None or found.hit.similarity >= 0.95
    strict = SemanticIndex(4, capacity=8, threshold=0.99, near_margin=0.1)
    strict.add(a, "ka", "s", "a", rows=(1, 2, 3))
    near = strict.lookup(b, "s")
    assert near.hit is None
    assert near.near is not None
    assert near.near.rows == (1, 2, 3)
    assert index.lookup(b, "s", "genre", ("night",)).hit is None  # vetoed by its words
