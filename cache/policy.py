"""`FreshnessPolicy`: how long answers stay fresh, revalidatable and usable when stale."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cache.base import Entry


@dataclass
class FreshnessPolicy:
    """Turns bytes into an `Entry` with jittered lifetimes.

    Jitter spreads expiry of entries written together (a prewarm, a burst of one prompt on
    many edges) so they are not all recomputed in the same second.
    """

    fresh: float
    """Seconds an answer is fresh (before jitter)."""
    revalidate: float
    """Seconds after freshness during which a stale answer is served while it is recomputed."""
    stale_if_error: float
    """Seconds after freshness during which a stale answer replaces a failed computation."""
    jitter: float = 0.1
    """Fraction of `fresh` by which each entry's lifetime is randomly shortened or lengthened."""
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def entry(
        self,
        body: bytes,
        *,
        now: float,
        etag: str = "",
        tags: tuple[str, ...] = (),
        fresh: float | None = None,
        shared: bool = True,
    ) -> Entry:
        """An entry created `now`; `fresh` overrides the policy's lifetime without jitter."""
        if fresh is None:
            fresh = self.fresh * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
        fresh_until = now + fresh
        return Entry(
            body=body,
            created=now,
            fresh_until=fresh_until,
            revalidate_until=fresh_until + self.revalidate,
            stale_until=fresh_until + max(self.revalidate, self.stale_if_error),
            etag=etag,
            tags=tags,
            shared=shared,
        )
