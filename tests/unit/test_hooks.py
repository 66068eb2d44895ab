"""The drill hooks' encoder faults: raise, hang until cleared, and end with their pool."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge.hooks import FaultyEncoder, set_fault
from models.errors import EncoderError


def _encode(texts: list[str], _timings: dict[str, float]) -> np.ndarray:
    return np.ones((len(texts), 4), dtype=np.float32)


def test_a_fault_raises_until_it_is_cleared() -> None:
    encoder = FaultyEncoder(_encode)
    assert encoder(["a"], {}).shape == (1, 4)
    encoder.set("raise")
    with pytest.raises(EncoderError, match="failed"):
        encoder(["a"], {})
    encoder.set(None)
    assert encoder(["a", "b"], {}).shape == (2, 4)


def _hung(encoder: FaultyEncoder) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def call() -> None:
        try:
            encoder(["a"], {})
        except EncoderError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, errors


def test_a_hung_call_ends_when_its_pool_closes() -> None:
    pool: Any = SimpleNamespace(encode=_encode, closing=[])
    set_fault(pool, "hang")
    assert isinstance(pool.encode, FaultyEncoder)
    set_fault(pool, "hang")  # wrapped once, however often the fault is set
    assert len(pool.closing) == 1
    thread, errors = _hung(pool.encode)
    thread.join(0.2)
    assert thread.is_alive()  # held, as a stuck model would hold it
    for step in pool.closing:  # what ComputePool.close runs
        step()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert "hung" in str(errors[0])


def test_clearing_the_fault_ends_a_hung_call() -> None:
    encoder = FaultyEncoder(_encode)
    encoder.set("hang")
    thread, errors = _hung(encoder)
    encoder.set(None)
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
