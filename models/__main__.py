"""`python -m models build | query | embed | verify`: build and exercise artifact folders."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import msgspec
from tqdm import tqdm

from models import artifacts, synth_playlists
from models.catalog import Catalog, load_rows, table_from_rows
from models.errors import CatalogError, ModelError
from models.index import IndexParams
from models.intent import Slots
from models.ranker import RankParams
from models.synthetic import synthetic_catalog


def _build(args: argparse.Namespace) -> None:
    index = IndexParams(m=args.m, ef_construction=args.ef_construction, threads=args.threads)
    settings = artifacts.BuildSettings(
        index=index,
        seed=args.seed,
        strict=args.strict,
        encoder_threads=args.threads,
        split=args.split,
    )
    start = time.perf_counter()
    manifest = artifacts.build(
        args.catalog,
        Path(args.out),
        settings,
        progress=not args.quiet,
        playlists=args.playlists,
        events=args.events,
    )
    print(
        f"built {manifest.version} ({manifest.tracks} tracks) in {args.out} "
        f"in {time.perf_counter() - start:.1f}s"
    )


def _query(args: argparse.Namespace) -> None:
    loaded = artifacts.load(Path(args.artifacts), encoder_threads=args.threads)
    generator = loaded.generator(RankParams())
    slots = Slots(genres=tuple(args.genre), moods=tuple(args.mood))
    start = time.perf_counter()
    intent = loaded.parser.parse(args.prompt, slots)
    parse_ms = (time.perf_counter() - start) * 1000
    playlist, timings = generator.generate(intent, args.n)
    tracks = loaded.catalog.tracks(playlist.rows)
    out = {
        "prompt": intent.text,
        "slots": msgspec.to_builtins(intent.slots),
        "version": playlist.version,
        "fingerprint": playlist.fingerprint,
        "tracks": [
            {
                "id": t["id"],
                "title": t["title"],
                "artist": t["artist"],
                "genres": t["genres"],
                "score": score,
            }
            for t, score in zip(tracks, playlist.scores, strict=True)
        ],
        "timings_ms": {"parse": round(parse_ms, 3), **{k: round(v, 3) for k, v in timings.items()}},
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))


def _embed(args: argparse.Namespace) -> None:
    loaded = artifacts.load(Path(args.artifacts), encoder_threads=args.threads)
    for row in loaded.encoder.encode(args.texts):
        print(json.dumps([round(float(x), 7) for x in row]))


def _verify(args: argparse.Namespace) -> None:
    path = Path(args.artifacts)
    manifest = artifacts.read_manifest(path)
    artifacts.verify(path, manifest)
    print(f"{path}: {manifest.version} ok ({len(manifest.files)} files verified)")


def _playlist_catalog(source: str) -> Catalog:
    # synthetic:N is the catalog `models build --catalog synthetic:N` makes (the build's seed,
    # not the playlists' one), so the playlists are over the tracks of that build.
    if source.startswith("synthetic:"):
        count = source.removeprefix("synthetic:")
        if not count.isdigit() or int(count) < 1:
            raise CatalogError(f"bad catalog source {source!r}: use synthetic:N with N ≥ 1")
        return synthetic_catalog(int(count), artifacts.BuildSettings().seed)
    path = Path(source)
    if path.is_dir():
        return artifacts.load(path, check=False).catalog
    rows, _report = load_rows(path)
    return Catalog(table_from_rows(rows))


def _synth_playlists(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    catalog = _playlist_catalog(args.catalog)
    playlists = synth_playlists.synthetic_playlists(catalog, args.playlists, args.seed)
    bar = tqdm(playlists, total=args.playlists, unit="playlist", disable=args.quiet)
    with bar:
        report = synth_playlists.write_slices(bar, Path(args.out))
    seconds = time.perf_counter() - start
    print(
        f"wrote {report.playlists} playlists ({report.tracks} tracks) over {len(catalog)} "
        f"catalog tracks to {args.out} ({len(report.files)} file(s)) in {seconds:.1f}s"
    )


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = IndexParams()
    build = commands.add_parser("build", help="build a versioned artifact folder")
    build.add_argument("--catalog", required=True, help="synthetic:N, PATH.csv or PATH.jsonl")
    build.add_argument("--out", required=True, help="artifact folder to write (replaced whole)")
    build.add_argument("--m", type=int, default=defaults.m, help="HNSW graph degree")
    build.add_argument("--ef-construction", type=int, default=defaults.ef_construction)
    build.add_argument("--threads", type=int, default=2, help="build threads")
    build.add_argument("--seed", type=int, default=7)
    build.add_argument("--strict", action="store_true", help="fail on any bad catalog row")
    build.add_argument("--quiet", action="store_true", help="no progress output")
    build.add_argument(
        "--playlists",
        nargs="+",
        default=[],
        metavar="PATH",
        help="listener playlists to learn a title model from: MPD slice files or folders, JSONL",
    )
    build.add_argument(
        "--events",
        nargs="+",
        default=[],
        metavar="ARCHIVE_DIR",
        help="listener events to learn from: the region archiver's Parquet folders",
    )
    build.add_argument(
        "--split",
        choices=("all", "train", "train+validation"),
        default="all",
        help="learn only from this split of the playlists (by pid hash; see models/corpus.py)",
    )
    build.set_defaults(run=_build)

    query = commands.add_parser("query", help="answer a prompt with a playlist (JSON)")
    query.add_argument("--artifacts", required=True)
    query.add_argument("prompt")
    query.add_argument("-n", type=int, default=None, help="playlist length")
    query.add_argument("--genre", action="append", default=[], help="structured genre slot")
    query.add_argument("--mood", action="append", default=[], help="structured mood slot")
    query.add_argument("--threads", type=int, default=1)
    query.set_defaults(run=_query)

    embed = commands.add_parser("embed", help="print the int8 encoder's vector per text")
    embed.add_argument("--artifacts", required=True)
    embed.add_argument("texts", nargs="+")
    embed.add_argument("--threads", type=int, default=1)
    embed.set_defaults(run=_embed)

    check = commands.add_parser("verify", help="check an artifact folder's checksums")
    check.add_argument("--artifacts", required=True)
    check.set_defaults(run=_verify)

    synth = commands.add_parser(
        "synth-playlists", help="write a seeded synthetic playlist corpus (MPD slice format)"
    )
    synth.add_argument(
        "--catalog", required=True, help="artifact folder, synthetic:N, PATH.csv or PATH.jsonl"
    )
    synth.add_argument("--playlists", type=_count, required=True, help="how many playlists")
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument(
        "--out", required=True, help="folder of mpd.slice.*.json files, or one .json/.json.gz"
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth_playlists)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
