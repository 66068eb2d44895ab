"""The API keys file: every line checked, every mistake named with its line number."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.auth import ApiKey, Authenticator, load_keys

DIGEST = hashlib.sha256(b"secret-key").hexdigest()


def test_a_good_file_loads_with_default_and_named_tiers(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    other = hashlib.sha256(b"other").hexdigest()
    path.write_text(f"\n# comment\nweb:read:{DIGEST}\napp: read , events :{other}:gold\n")
    keys = load_keys(path)
    assert keys[DIGEST] == ApiKey("web", frozenset({"read"}), "default")
    assert keys[other] == ApiKey("app", frozenset({"read", "events"}), "gold")
    auth = Authenticator(keys)
    assert auth.lookup("secret-key") == keys[DIGEST]
    assert auth.allows("secret-key", "read")
    assert not auth.allows("secret-key", "events")
    assert not auth.allows(None, "read")
    assert Authenticator(None).allows(None, "admin")  # open


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("web:read", "expected name:scopes"),
        (f"web space:read:{DIGEST}", "bad key name"),
        (f"web:write:{DIGEST}", "scopes must be"),
        (f"web::{DIGEST}", "scopes must be"),
        ("web:read:secret-key", "SHA-256"),
        (f"web:read:{DIGEST.upper()}", "SHA-256"),
        (f"web:read:{DIGEST}:gold tier", "bad tier"),
    ],
)
def test_a_bad_line_is_refused_with_its_number(tmp_path: Path, line: str, complaint: str) -> None:
    path = tmp_path / "keys"
    path.write_text(f"ok:read:{hashlib.sha256(b'x').hexdigest()}\n{line}\n")
    with pytest.raises(ValueError, match=complaint) as caught:
        load_keys(path)
    assert f"{path}:2:" in str(caught.value)


def test_a_key_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"a:read:{DIGEST}\nb:events:{DIGEST}\n")
    with pytest.raises(ValueError, match="twice"):
        load_keys(path)
