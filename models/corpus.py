"""Playlist corpora (what listeners made for which words) and the seeded split by pid.

Two formats, told apart by the file name:

- a Million Playlist Dataset slice, `.json` or `.json.gz`:
  `{"info": …, "playlists": [{"name", "pid", "num_followers", "tracks": [{"track_uri":
  "spotify:track:ID", …}], …}]}` (fields other than these are ignored), or a folder of
  slices (its `*.json` and `*.json.gz`, in sorted order);
- JSONL, `.jsonl` or `.jsonl.gz`: one `{"name", "tracks": [ID or "spotify:track:ID"],
  "pid"?, "num_followers"?}` per line; a line without a pid gets its line number.

Anything malformed raises `CorpusError` naming the file and the playlist or line.

The split is a hash of the pid, so it never depends on file order or corpus size:
`b = xxh3_64("mpd:{pid}") % 100`; `test` when b < 50, `validation` when 50 ≤ b < 60 (a part
of train kept aside for choosing settings), `train` otherwise. Models learn from `train`
(or `train+validation` once settings are fixed) and are judged on `test`.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import xxhash

from models.errors import CorpusError

Split = Literal["train", "validation", "test"]
Selection = Literal["train", "validation", "test", "train+validation"]
TRACK_URI = "spotify:track:"
_ID = "[0-9A-Za-z_-]{1,64}"
# Checked by msgspec while decoding: a Python check per track would cost more than the decode.
TrackUri = Annotated[str, msgspec.Meta(pattern=f"^{TRACK_URI}{_ID}$")]
TrackRef = Annotated[str, msgspec.Meta(pattern=f"^(?:{TRACK_URI})?{_ID}$")]
_PLAYLIST_AT = re.compile(r"\$\.playlists\[(\d+)\]")
PathArg = str | os.PathLike[str]


class CorpusPlaylist(msgspec.Struct, frozen=True):
    """One listener playlist: its title, and its track ids (without `spotify:track:`)."""

    pid: int
    name: str
    tracks: tuple[str, ...]
    num_followers: int = 0


class _SliceTrack(msgspec.Struct):
    track_uri: TrackUri


class _SlicePlaylist(msgspec.Struct):
    name: str
    pid: int
    tracks: list[_SliceTrack]
    num_followers: int = 0


class _Slice(msgspec.Struct):
    playlists: list[_SlicePlaylist]


class _Line(msgspec.Struct):
    name: str
    tracks: list[TrackRef]
    pid: int | None = None
    num_followers: int = 0


_SLICE = msgspec.json.Decoder(_Slice)
_LINE = msgspec.json.Decoder(_Line)


def split_of(pid: int) -> Split:
    """The split a playlist belongs to, from a hash of its pid (see the module docstring)."""
    bucket = xxhash.xxh3_64_intdigest(f"mpd:{pid}".encode()) % 100
    if bucket < 50:
        return "test"
    return "validation" if bucket < 60 else "train"


def in_selection(pid: int, split: Selection) -> bool:
    """Whether a playlist's pid falls in the selection."""
    found = split_of(pid)
    return found in ("train", "validation") if split == "train+validation" else found == split


def in_split(playlists: Iterable[CorpusPlaylist], split: Selection) -> list[CorpusPlaylist]:
    """The playlists of one split; `train+validation` is train with validation put back."""
    return [p for p in playlists if in_selection(p.pid, split)]


def iter_playlists(paths: PathArg | Iterable[PathArg]) -> Iterator[CorpusPlaylist]:
    """Playlists of every file (or folder of slices) in `paths`, in order."""
    for path in _files(paths):
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            yield from _read_jsonl(path)
        else:
            yield from _read_slice(path)


def load_playlists(paths: PathArg | Iterable[PathArg]) -> list[CorpusPlaylist]:
    """Every playlist of `paths` in a list; a pid seen twice is refused."""
    seen: dict[int, str] = {}
    playlists = []
    for playlist in iter_playlists(paths):
        if playlist.pid in seen:
            raise CorpusError(
                f"pid {playlist.pid} appears twice ({seen[playlist.pid]!r} and "
                f"{playlist.name!r}); JSONL files without pids number their lines, so give "
                "them pids"
            )
        seen[playlist.pid] = playlist.name
        playlists.append(playlist)
    return playlists


def _files(paths: PathArg | Iterable[PathArg]) -> Iterator[Path]:
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    for raw in given:
        path = Path(raw)
        if path.is_dir():
            slices = sorted(p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")))
            if not slices:
                raise CorpusError(f"{path}: no *.json or *.json.gz slices in this folder")
            yield from slices
        elif not path.is_file():
            raise CorpusError(f"{path}: no such file or folder")
        elif not path.name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
            raise CorpusError(f"{path}: unknown corpus format (.json, .jsonl, optionally .gz)")
        else:
            yield path


def _read(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.endswith(".gz") else raw
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise CorpusError(f"{path}: cannot read: {exc}") from exc


def _strip(ref: str) -> str:
    return ref[len(TRACK_URI) :] if ref.startswith(TRACK_URI) else ref


def _read_slice(path: Path) -> Iterator[CorpusPlaylist]:
    raw = _read(path)
    try:
        decoded = _SLICE.decode(raw)
    except msgspec.DecodeError as exc:
        where = _locate(raw, str(exc))
        raise CorpusError(f"{path}: not a playlist slice{where}: {exc}") from exc
    skip = len(TRACK_URI)
    for playlist in decoded.playlists:
        ids = tuple(track.track_uri[skip:] for track in playlist.tracks)
        yield CorpusPlaylist(playlist.pid, playlist.name, ids, playlist.num_followers)


def _locate(raw: bytes, message: str) -> str:
    """`, playlist I (pid P)` for a validation error inside `playlists[I]`, else ``."""
    match = _PLAYLIST_AT.search(message)
    if match is None:
        return ""
    at = int(match.group(1))
    pid: Any = None
    try:  # only on the error path: a loose decode to name the playlist by its pid
        loose = msgspec.json.decode(raw)
        pid = loose["playlists"][at].get("pid")
    except (msgspec.DecodeError, LookupError, TypeError, AttributeError):
        pass
    return f", playlist {at}" + (f" (pid {pid})" if isinstance(pid, int) else "")


def _read_jsonl(path: Path) -> Iterator[CorpusPlaylist]:
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            decoded = _LINE.decode(line)
        except msgspec.DecodeError as exc:
            raise CorpusError(f"{path}: line {number}: not a playlist: {exc}") from exc
        ids = tuple(_strip(ref) for ref in decoded.tracks)
        pid = number if decoded.pid is None else decoded.pid
        yield CorpusPlaylist(pid, decoded.name, ids, decoded.num_followers)
