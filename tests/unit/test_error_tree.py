"""The service's one exception tree: every error class belongs to it and is drawn in it."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import errors
from errors import ConfigurationError, PlaylistServiceError

PACKAGES = ("errors", "models", "cache", "regional", "edge")
"""Where the service's code lives (the client SDK keeps its own tree; loadtest is tooling)."""


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
            if not info.name.endswith("__main__"):  # importing it would run the command
                names.append(info.name)
    return names


def _defined_exceptions() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == name
            ):
                found.append(value)
    return found


def _tree() -> set[type[BaseException]]:
    seen: set[type[BaseException]] = set()
    pending: list[type[BaseException]] = [PlaylistServiceError]
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            pending.extend(cls.__subclasses__())
    return seen


def test_every_error_class_of_the_service_derives_from_the_root() -> None:
    """An exception class defined anywhere in models/, cache/, regional/ or edge/ is a member
    of the tree, so a caller can always name what it catches within it."""
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _defined_exceptions()
        if not issubclass(cls, PlaylistServiceError)
    ]
    assert strays == []


def test_the_root_docstring_draws_every_public_class_of_the_tree() -> None:
    """Each public member of the tree appears by name in the drawing, and nothing drawn is
    missing from the code."""
    doc = errors.__doc__ or ""
    drawn = set(re.findall(r"[├└]── (\w+)", doc)) | {"PlaylistServiceError"}
    public = {
        cls.__name__
        for cls in _tree()
        if not cls.__name__.startswith("_") and cls.__module__.split(".")[0] in PACKAGES
    }
    assert public - drawn == set(), "classes missing from the drawing"
    assert drawn - public == set(), "classes drawn that do not exist"


def test_each_package_root_hangs_from_the_service_root() -> None:
    """ModelError, CacheError, RegionalError and EdgeError are the branches of one tree."""
    from cache.errors import CacheError
    from edge.errors import EdgeError
    from models.errors import ModelError
    from regional.errors import RegionalError

    for branch in (ModelError, CacheError, RegionalError, EdgeError):
        assert branch.__bases__ == (PlaylistServiceError,)


def test_the_former_strays_keep_what_their_callers_relied_on() -> None:
    """A version conflict is still answered 409; a bad Redis URL is still a ValueError."""
    from edge.errors import Conflict, EdgeError, VersionConflict
    from regional.connections import RedisURLError, redis_client

    assert issubclass(VersionConflict, Conflict)
    assert VersionConflict.status == 409
    assert issubclass(RedisURLError, ConfigurationError)
    with pytest.raises(ValueError, match="unsupported scheme"):
        redis_client("http://localhost", timeout=1.0)
    assert issubclass(RedisURLError, ValueError)
    assert not issubclass(RedisURLError, EdgeError)


def test_the_one_handler_maps_a_version_conflict_to_409() -> None:
    """The conflict reaches the client as problem+json with its own message."""
    from edge.errors import VersionConflict
    from edge.problems import problem

    status, _headers, body = problem(VersionConflict("no candidate version to promote"), "/x")
    assert status == 409
    assert b'"title":"Conflict"' in body
    assert b"no candidate version to promote" in body
