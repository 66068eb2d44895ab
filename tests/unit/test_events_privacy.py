"""What leaves the edge about a listener: keyed user hashes and masked prompt text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from regional.events import EventIn, Pseudonymizer, load_or_make_key, mask_pii


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("jazz for jo.smith+work@example.co.uk", "jazz for [email]"),
        ("songs like https://example.com/x?y=1 please", "songs like [url] please"),
        ("what @djkhaled plays", "what [handle] plays"),
        ("call +44 20 7946 0958 for more", "call [number] for more"),
        ("card 4111 1111 1111 1111", "card [number]"),
        ("90s hip hop at 120 bpm", "90s hip hop at 120 bpm"),  # short numbers are music
    ],
)
def test_personal_details_are_masked_and_music_is_not(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


def _event(user: str) -> EventIn:
    return EventIn(
        event_id="event-0001",
        type="save",
        playlist="fp",
        prompt_key="pk",
        track_id="t1",
        position=0,
        ts=datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
        user=user,
        prompt="email me: a@b.io",
    )


def test_user_hashes_are_keyed_stable_and_not_the_token() -> None:
    one, other = Pseudonymizer(b"k" * 32, "r1"), Pseudonymizer(b"j" * 32, "r1")
    stored = one.stored(_event("listener-1"))
    assert stored.user == one.user("listener-1") != "listener-1"
    assert other.user("listener-1") != stored.user  # without the key, no link to the token
    assert one.user("listener-2") != stored.user
    assert stored.prompt == "email me: [email]"
    assert stored.client_ms == int(datetime(2026, 11, 23, 8, 30, tzinfo=UTC).timestamp() * 1000)
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymizer(b"short", "r1")


def test_a_made_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "user-hash.key"
    first = load_or_make_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_make_key(path) == first
    assert len(first) == 32
