"""The region's event log: the protocol both logs follow and the entries they hand out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from regional.events.schema import Event


class Entry(msgspec.Struct, frozen=True):
    """An entry of the log as read: ack it by (partition, id) once handled."""

    partition: int
    id: str
    event: Event | None
    """None when the stored bytes are not a readable event (acked and skipped, never
    retried: it would fail the same way every time)."""


class Delivery(msgspec.Struct, frozen=True):
    """A readable entry, as consumers' handlers get it."""

    partition: int
    id: str
    event: Event


def id_order(entry_id: str) -> tuple[int, int]:
    """Stream ids ("ms-seq") in their order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventLog(Protocol):
    partitions: int

    def partition_of(self, user: str) -> int: ...

    async def append(self, events: Sequence[Event]) -> list[str | None]:
        """Store new events; per event its entry id, or None for a duplicate `event_id`."""
        ...

    async def ensure_group(self, group: str) -> None: ...

    async def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        """Entries no consumer of `group` has been given yet (at most `count`)."""
        ...

    async def pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        """Entries given to `consumer` and not acked (what it held when it crashed)."""
        ...

    async def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries other consumers of `group` got and left unacked for `min_idle_ms`."""
        ...

    async def ack(self, group: str, deliveries: Sequence[Entry | Delivery]) -> None: ...

    async def trim(self, partition: int, archived: str, before_ms: int) -> int:
        """Drop entries of `partition` up to `archived` (inclusive) that were added before
        `before_ms` (epoch milliseconds); how many went."""
        ...

    async def length(self) -> int: ...

    async def close(self) -> None: ...
