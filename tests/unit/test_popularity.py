"""Heavy hitters on this node: order, specs kept, drain starts over."""

from __future__ import annotations

from cache.popularity import Popularity


def test_most_counted_first_and_only_with_a_known_request() -> None:
    popularity = Popularity(lg_max_counters=6)
    for key, times in (("a", 5), ("b", 9), ("c", 2), ("nospec", 50)):
        for i in range(times):
            popularity.hit(key, f"spec-{key}".encode() if key != "nospec" and i == 0 else None)
    top = popularity.top(3)
    assert [c.key for c in top] == ["b", "a", "c"]
    assert [c.hits for c in top] == [9, 5, 2]
    assert top[0].spec == b"spec-b"


def test_many_distinct_keys_keep_the_heavy_ones() -> None:
    popularity = Popularity(lg_max_counters=6)  # 48 counters
    for i in range(5000):
        popularity.hit(f"tail-{i}", b"t")
        if i % 10 == 0:
            popularity.hit("head", b"h")
    assert popularity.top(1)[0].key == "head"


def test_drain_returns_counts_and_starts_over() -> None:
    popularity = Popularity()
    popularity.hit("a", b"x")
    assert [c.key for c in popularity.drain(5)] == ["a"]
    assert popularity.top(5) == []
