"""Bad input: every malformed request gets a 4xx problem+json saying what was wrong."""

from __future__ import annotations

import msgspec
import pytest

from .conftest import ClientFactory

P = "/v1/playlists"
JSON = {"content-type": "application/json"}
OK = {"schema_version": 1, "prompt": "jazz"}

CASES: list[tuple[str, str, dict[str, object], int, str]] = [
    # (method, path, request kwargs, status, words the detail must contain)
    ("GET", P + "?genres=jazz", {}, 400, "unknown parameter"),
    ("GET", P, {}, 400, "empty request"),
    ("GET", P + "?q=%20%20", {}, 400, "empty request"),
    ("GET", P + "?q=jazz&n=0", {}, 400, "n"),
    ("GET", P + "?q=jazz&n=101", {}, 400, "n must be"),
    ("GET", P + "?q=jazz&n=abc", {}, 400, "n"),
    ("GET", P + "?q=a&q=b", {}, 400, "given 2 times"),
    ("GET", P + "?q=%ff", {}, 400, "UTF-8"),
    ("GET", P + "?q=jazz%00", {}, 400, "control character"),
    ("GET", P + "?q=" + "a" * 2100, {}, 400, "2000"),
    ("GET", P + "?mood=furious", {}, 400, "unknown mood"),
    ("GET", P + "?genre=jazz&exclude=jazz", {}, 400, "contradictory"),
    ("GET", P + "?tempo=warp", {}, 400, "tempo"),
    ("GET", P + "?explicit=perhaps", {}, 400, "explicit"),
    ("GET", P + "?exclude=nothing-known", {}, 400, "cannot exclude"),
    ("POST", P, {"json": {"prompt": "jazz"}}, 400, "schema_version"),
    ("POST", P, {"json": {**OK, "schema_version": 2}}, 400, "schema_version 2"),
    ("POST", P, {"json": {**OK, "colour": "red"}}, 400, "unknown field"),
    ("POST", P, {"json": {**OK, "n": "ten"}}, 400, "n"),
    ("POST", P, {"json": {**OK, "n": 0}}, 400, "n"),
    ("POST", P, {"json": {**OK, "n": 500}}, 400, "n must be"),
    ("POST", P, {"json": {**OK, "prompt": 42}}, 400, "prompt"),
    ("POST", P, {"json": {**OK, "prompt": "x" * 2001}}, 400, "prompt"),
    ("POST", P, {"json": {**OK, "prompt": "jazz\u0007"}}, 400, "control character"),
    ("POST", P, {"json": {"schema_version": 1}}, 400, "empty request"),
    ("POST", P, {"json": {**OK, "slots": {"moods": "calm"}}}, 400, "moods"),
    ("POST", P, {"json": {**OK, "slots": {"tempo": [150, 90]}}}, 400, "tempo"),
    ("POST", P, {"json": {**OK, "slots": {"era": [1700, 1800]}}}, 400, "era"),
    (
        "POST",
        P,
        {"json": {**OK, "slots": {"genres": ["jazz"], "exclude_genres": ["jazz"]}}},
        400,
        "contradictory",
    ),
    ("POST", P, {"json": {**OK, "slots": {"flavour": ["x"]}}}, 400, "unknown field"),
    ("POST", P, {"json": {**OK, "user": ""}}, 400, "user"),
    ("POST", P, {"content": b"{not json", "headers": JSON}, 400, ""),
    (
        "POST",
        P,
        {"content": b'{"schema_version":1,"prompt":"\xff"}', "headers": JSON},
        400,
        "UTF-8",
    ),
    ("POST", P, {"content": b"[1, 2]", "headers": JSON}, 400, ""),
    (
        "POST",
        P,
        {"content": b"prompt=jazz", "headers": {"content-type": "text/plain"}},
        415,
        "application/json",
    ),
    ("POST", P, {"content": b"{}"}, 415, "application/json"),
    ("POST", P, {"content": b'{"prompt":"' + b"a" * 9000 + b'"}', "headers": JSON}, 413, ""),
    ("DELETE", P, {}, 405, ""),
    ("GET", "/v2/playlists", {}, 404, ""),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
async def test_bad_request_gets_problem_details(
    edge: ClientFactory,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    words: str,
) -> None:
    async with edge() as client:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
        after = await client.get(P + "?q=jazz")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = msgspec.json.decode(response.content)
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"]
    assert words.casefold() in problem["detail"].casefold()
    assert after.status_code == 200  # nothing a client sends breaks the node
