"""System binaries the suite drives for real (promtool, chromium): `make setup` installs them.

Outside CI a missing one skips its tests; in CI (CI=true) it fails them, since the clean
clone's `make test` ran setup first.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(name: str) -> str:
    """The path of `name` on PATH; skip (fail under CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make setup installs it from Debian's packages)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path
