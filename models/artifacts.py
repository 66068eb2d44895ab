"""Versioned artifact folders: build one from a catalog source, load and verify one.

A folder holds the int8 encoder, its tokenizer, the catalog table, the projected track
vectors (16-bit fixed point, read by the ranker and by recall checks), the HNSW index,
fallback playlists and `manifest.json` with a sha256 per file. The version is derived from
those hashes, so the same bytes always carry the same version and cache keys can rely on it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from models import semantic
from models.catalog import Catalog, LoadReport, load_rows, table_from_rows
from models.cooccur import CooccurSettings, fit_track_factors
from models.corpus import Selection, in_selection, iter_playlists
from models.descriptors import (
    DEFAULT_PART_WEIGHTS,
    descriptor_parts,
    embed_texts,
    track_vectors,
)
from models.encoder import PromptEncoder
from models.encoder_build import build_encoder, load_parity_prompts
from models.errors import ArtifactError, ModelError
from models.fallback import FallbackPlaylists
from models.generator import PlaylistGenerator
from models.index import STORE_DTYPE, IndexParams, TrackIndex, choose_ef, fit_projection
from models.intent import IntentParser, parser_for
from models.listening import event_examples
from models.ranker import RankParams
from models.semantic import Thresholds
from models.synthetic import synthetic_catalog
from models.titles import TITLE_FILES, Example, TitleModel, TitleSettings, catalog_rows, learn

# 2: track vectors projected before indexing; 3: stored as int16, not float16; 4: the catalog
# holds editorial tags and track vectors are composed from artist, tags, words, style and era.
FORMAT = 4
READABLE = (4,)
MANIFEST = "manifest.json"
COOCCUR_FILE = "cooccur.npy"
FILES = {
    "encoder": "encoder.onnx",
    "tokenizer": "tokenizer.json",
    "catalog": "catalog.arrow",
    "vectors": "vectors.npy",
    "projection": "projection.npy",
    "index": "index.hnsw",
    "fallbacks": "fallbacks.json",
}


class BuildSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything that shapes a build besides the catalog source."""

    index: IndexParams = IndexParams()
    """HNSW parameters."""
    index_dim: int = 192
    """Width of the indexed vectors: the encoder's 384 are projected onto this many leading
    directions of the catalog's vectors (at or above 384: no projection)."""
    parts: dict[str, float] = msgspec.field(default_factory=lambda: dict(DEFAULT_PART_WEIGHTS))
    """Weight of each descriptor part in a track vector (see models/descriptors.py)."""
    jitter: float = 0.05
    """Norm of the seeded noise added to each unit track vector (keeps equal tracks apart)."""
    seed: int = 7
    """Seed for the synthetic catalog and vector jitter."""
    embed_batch: int = 1
    """Descriptor texts per encoder call. Dynamic int8 picks activation scales per batch, so
    a text's vector depends on its batch mates; 1 keeps every vector independent (and equal
    to what a prompt gets at serve time) for ~20 % of throughput."""
    encoder_threads: int = 2
    """Threads embedding descriptors and titles: each runs batch-1 calls on one intra-op
    thread of a shared session (see `embed_texts`)."""
    fallback_length: int = 100
    """Tracks per precomputed fallback playlist."""
    strict: bool = False
    """Fail the build on any bad catalog row instead of skipping and reporting it."""
    titles: TitleSettings = TitleSettings()
    """How the title model learns from training playlists, and how its votes are read."""
    cooccur: CooccurSettings | None = CooccurSettings()
    """How track co-occurrence vectors are learned from the same playlists (None: not)."""
    split: Selection | Literal["all"] = "all"
    """Which playlists of the corpus to learn from (`models.corpus` split by pid); `all` for
    production, `train` or `train+validation` when the rest is kept for judging."""


class FileEntry(msgspec.Struct, frozen=True):
    sha256: str
    bytes: int


class Manifest(msgspec.Struct, frozen=True):
    """What `manifest.json` records about a build."""

    format: int
    version: str
    created: str
    source: str
    dim: int
    index_dim: int
    tracks: int
    index: IndexParams
    recall: dict[str, float]
    encoder: dict[str, str | int | float]
    descriptors: dict[str, int | float]
    catalog: dict[str, int | list[str]]
    files: dict[str, FileEntry]
    recall_strict: dict[str, float] = {}
    """recall@k as plain set overlap with brute force (`recall` counts near-ties)."""
    training: dict[str, Any] = {}
    """What the learned parts were learned from (sources, split, counts); empty when the
    artifact is content only."""
    titles: TitleSettings | None = None
    """The title model's settings; None when the artifact has none."""
    cooccur: CooccurSettings | None = None
    """The co-occurrence vectors' settings; None when the artifact has none."""
    semantic: Thresholds | None = None
    """Semantic-hit thresholds calibrated on this version (also in `semantic.json`); None
    in artifacts built before they were."""


@dataclass(frozen=True)
class Artifacts:
    """A loaded, verified artifact version: everything the request path needs from models."""

    path: Path
    manifest: Manifest
    catalog: Catalog
    index: TrackIndex
    encoder: PromptEncoder
    fallbacks: FallbackPlaylists
    parser: IntentParser
    titles: TitleModel | None = None
    cooccur: np.ndarray | None = None
    """Unit track co-occurrence vectors (float16, one row per catalog track), if learned."""

    @property
    def semantic(self) -> Thresholds | None:
        """Per-bucket semantic-hit thresholds calibrated on this version, if any."""
        return self.manifest.semantic

    @property
    def version(self) -> str:
        return self.manifest.version

    def generator(self, params: RankParams = RankParams()) -> PlaylistGenerator:
        """The miss path over this version's encoder, index and catalog."""
        return PlaylistGenerator(
            catalog=self.catalog,
            index=self.index,
            encoder=self.encoder,
            fallbacks=self.fallbacks,
            version=self.version,
            params=params,
            titles=self.titles,
            cooccur=self.cooccur,
        )


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each named file, two at a time (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(names, pool.map(_sha256, (folder / n for n in names)), strict=True))


def _entries(folder: Path, digests: dict[str, str]) -> tuple[dict[str, FileEntry], str]:
    """The manifest's file entries and the version their digests name."""
    files = {n: FileEntry(d, (folder / n).stat().st_size) for n, d in digests.items()}
    version = "v" + hashlib.sha256("".join(sorted(digests.values())).encode()).hexdigest()[:12]
    return files, version


def _catalog_from(source: str, settings: BuildSettings) -> tuple[Catalog, LoadReport]:
    if source.startswith("synthetic:"):
        count = source.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ArtifactError(f"bad catalog source {source!r}: use synthetic:N with N ≥ 1")
        n_tracks = int(count)
        catalog = synthetic_catalog(n_tracks, seed=settings.seed)
        return catalog, LoadReport(rows=len(catalog))
    rows, report = load_rows(Path(source), strict=settings.strict)
    return Catalog(table_from_rows(rows)), report


def build(
    source: str,
    out: Path,
    settings: BuildSettings = BuildSettings(),
    progress: bool = True,
    playlists: Sequence[str | os.PathLike[str]] = (),
    events: Sequence[str | os.PathLike[str]] = (),
) -> Manifest:
    """Build an artifact folder at `out` from `synthetic:N`, a .csv or a .jsonl catalog,
    learning a title model from `playlists` (MPD slices, folders of them, or JSONL) and
    from the listener events in `events` (Parquet archive folders), if any.

    Everything is written to a temporary sibling folder first and moved into place at the
    end, so a failed build never leaves a half-written `out`.
    """
    out = out.resolve()
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = _build_into(tmp, source, settings, progress, playlists, events)
        manifest = _calibrate_semantic(tmp, manifest, settings, progress)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _calibrate_semantic(
    tmp: Path, manifest: Manifest, settings: BuildSettings, progress: bool
) -> Manifest:
    """Judge template pairs (and pairs of the learned titles) on the built version, store
    the per-bucket thresholds beside it, and re-version the folder with them."""
    loaded = load(tmp, check=False)
    pairs = semantic.template_pairs(loaded.catalog.genre_names, seed=settings.seed)
    if loaded.titles is not None:
        keys = sorted(loaded.titles.keys)
        sample = random.Random(settings.seed).sample(keys, min(len(keys), 3000))
        pairs += semantic.title_pairs(sample, loaded.parser, seed=settings.seed)
    with tqdm(desc="semantic pairs", unit="prompt", disable=not progress) as bar:
        judged = semantic.judge_on(
            loaded.generator(), loaded.parser, pairs, progress=lambda _done: bar.update(1)
        )
    thresholds = semantic.calibrate(judged)
    (tmp / semantic.THRESHOLDS_FILE).write_bytes(
        msgspec.json.format(msgspec.json.encode(thresholds))
    )
    if progress:
        print(
            f"semantic: {len(pairs)} pairs; thresholds default {thresholds.default}, "
            + ", ".join(f"{b} {t}" for b, t in thresholds.buckets.items())
        )
    digests = {name: entry.sha256 for name, entry in manifest.files.items()}  # hashed once
    digests |= _digests(tmp, [semantic.THRESHOLDS_FILE])
    files, version = _entries(tmp, digests)
    manifest = msgspec.structs.replace(manifest, version=version, files=files, semantic=thresholds)
    (tmp / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def _build_into(
    tmp: Path,
    source: str,
    settings: BuildSettings,
    progress: bool,
    playlists: Sequence[str | os.PathLike[str]],
    events: Sequence[str | os.PathLike[str]] = (),
) -> Manifest:
    say = print if progress else (lambda *_: None)
    catalog, report = _catalog_from(source, settings)
    for line, why in report.skipped[:20]:
        say(f"skipped catalog line {line}: {why}")
    say(f"catalog source: {report.summary()}")
    if unknown := sorted(set(settings.parts) - set(DEFAULT_PART_WEIGHTS)):
        raise ArtifactError(
            f"unknown descriptor parts {unknown}; known: {list(DEFAULT_PART_WEIGHTS)}"
        )
    catalog.save(tmp / FILES["catalog"])
    say(f"catalog: {len(catalog)} tracks, {len(catalog.genre_names)} genres")

    built = build_encoder(tmp / "encoder-build")
    os.replace(built.onnx_path, tmp / FILES["encoder"])
    os.replace(built.tokenizer_path, tmp / FILES["tokenizer"])
    shutil.rmtree(tmp / "encoder-build")
    say(f"encoder: int8 parity with fp32 min {built.parity_min:.4f} mean {built.parity_mean:.4f}")
    encoder = PromptEncoder(
        tmp / FILES["encoder"],
        tmp / FILES["tokenizer"],
        max_tokens=built.max_tokens,
        intra_op_threads=1,
        batch_size=settings.embed_batch,
    )

    parts = descriptor_parts(catalog)
    part_vectors = {
        part: embed_texts(
            encoder, texts, settings.embed_batch, progress, part, settings.encoder_threads
        )
        for part, texts in parts.texts.items()
        if settings.parts.get(part)
    }

    def blocks() -> Iterator[tuple[int, np.ndarray]]:  # seeded: both passes see the same
        return track_vectors(
            part_vectors, parts, settings.parts, jitter=settings.jitter, seed=settings.seed
        )

    projection, energy = fit_projection(blocks(), settings.index_dim)
    np.save(tmp / FILES["projection"], projection)
    say(f"projection: {encoder.dim} -> {projection.shape[1]} dims keep {energy:.1%} of energy")
    vectors = np.lib.format.open_memmap(
        tmp / FILES["vectors"],
        mode="w+",
        dtype=STORE_DTYPE,
        shape=(len(catalog), projection.shape[1]),
    )
    index = TrackIndex.build(blocks(), vectors, settings.index, projection, progress)
    vectors.flush()
    queries = encoder.encode(load_parity_prompts())
    ef, recalls = choose_ef(index, queries, settings.index)
    say(
        f"index: ef_search={ef}; recall@{settings.index.recall_k}: "
        + ", ".join(f"ef={r.ef} {r.recall:.3f} (strict {r.strict:.3f})" for r in recalls)
    )
    if recalls[-1].recall < settings.index.recall_target:
        say(
            f"index: recall target {settings.index.recall_target} not reached; "
            f"ef_search stops at the ladder's top ({ef})"
        )
    index.save(tmp / FILES["index"])
    del vectors, index
    FallbackPlaylists.build(catalog, settings.fallback_length, RankParams().max_per_artist).save(
        tmp / FILES["fallbacks"]
    )

    training: dict[str, Any] = {}
    names = list(FILES.values())
    if playlists or events:
        started = time.perf_counter()
        titles, training, factors = _learn_titles(
            catalog, encoder, settings, playlists, events, progress
        )
        training["seconds"] = round(time.perf_counter() - started, 1)
        names += titles.save(tmp)
        if factors is not None:
            np.save(tmp / COOCCUR_FILE, factors.astype(np.float16))
            names.append(COOCCUR_FILE)
        say(
            f"titles: {training['titles']} distinct titles from {training['playlists_used']} "
            f"playlists ({training['split']}), {training['title_tracks']} title-track weights"
        )
    files, version = _entries(tmp, _digests(tmp, names))
    manifest = Manifest(
        format=FORMAT,
        version=version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        dim=encoder.dim,
        index_dim=int(projection.shape[1]),
        tracks=len(catalog),
        index=msgspec.structs.replace(settings.index, ef_search=ef),
        recall={str(r.ef): round(r.recall, 4) for r in recalls},
        recall_strict={str(r.ef): round(r.strict, 4) for r in recalls},
        encoder={
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "quantization": "dynamic, per-channel uint8 weights",
            "max_tokens": built.max_tokens,
            "parity_min": round(built.parity_min, 5),
            "parity_mean": round(built.parity_mean, 5),
        },
        descriptors={
            **{f"{p}_texts": len(t) for p, t in parts.texts.items()},
            **{f"{p}_weight": w for p, w in settings.parts.items()},
            "jitter": settings.jitter,
            "seed": settings.seed,
            "projection_energy": round(energy, 4),
        },
        catalog={
            "skipped_rows": len(report.skipped),
            "merged_rows": report.merged,
            "genres": list(catalog.genre_names),
        },
        files=files,
        training=training,
        titles=settings.titles if training else None,
        cooccur=settings.cooccur if COOCCUR_FILE in names else None,
    )
    (tmp / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def _learn_titles(
    catalog: Catalog,
    encoder: PromptEncoder,
    settings: BuildSettings,
    playlists: Sequence[str | os.PathLike[str]],
    events: Sequence[str | os.PathLike[str]],
    progress: bool,
) -> tuple[TitleModel, dict[str, Any], np.ndarray | None]:
    """The title model, what it learned from, and co-occurrence vectors over the same
    playlists (listeners' accepted tracks joining as weighted pseudo-playlists)."""
    lookup = catalog_rows(catalog)
    labelled, listening = event_examples(events, lookup, progress=progress) if events else ([], {})
    counts = {"read": 0, "used": 0, "entries": 0, "in_catalog": 0}
    together: list[np.ndarray] = []  # each playlist's rows, for co-occurrence

    def examples() -> Iterator[Example]:
        for playlist in iter_playlists(playlists):
            counts["read"] += 1
            if settings.split != "all" and not in_selection(playlist.pid, settings.split):
                continue
            rows = lookup(playlist.tracks)
            known = rows[rows >= 0]
            counts["used"] += 1
            counts["entries"] += len(rows)
            counts["in_catalog"] += len(known)
            together.append(known)
            yield Example(playlist.name, known)
        yield from labelled

    def embed(keys: list[str]) -> np.ndarray:
        return embed_texts(
            encoder, keys, settings.embed_batch, progress, "titles", settings.encoder_threads
        )

    model = learn(examples(), len(catalog), embed, settings.titles, progress=progress)
    training = {
        "sources": [str(Path(p).resolve()) for p in playlists],
        "split": settings.split,
        "playlists_read": counts["read"],
        "playlists_used": counts["used"],
        "track_entries": counts["entries"],
        "track_entries_in_catalog": counts["in_catalog"],
        "titles": len(model),
        "title_tracks": len(model.rows),
        "events": listening,
    }
    factors = None
    if settings.cooccur is not None:
        weights = [np.ones(len(rows)) for rows in together]
        for example in labelled:  # accepted tracks only: ALS weights must be positive
            if example.weights is not None:
                liked = example.weights > 0
                together.append(example.rows[liked])
                weights.append(example.weights[liked])
        kept = [i for i, rows in enumerate(together) if len(rows)]
        if kept:
            factors = fit_track_factors(
                [together[i] for i in kept],
                len(catalog),
                settings.cooccur,
                progress,
                [weights[i] for i in kept],
            )
        training["cooccur_playlists"] = len(kept)
    return model, training, factors


def _replace_dir(new: Path, target: Path) -> None:
    # Two renames: the old folder is moved aside before the new one takes its name.
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: Path) -> Manifest:
    """Decode `manifest.json`, refusing missing, malformed or unsupported ones."""
    file = path / MANIFEST
    if not file.is_file():
        raise ArtifactError(f"{path}: no {MANIFEST}; build one with `python -m models build`")
    try:
        manifest = msgspec.json.decode(file.read_bytes(), type=Manifest)
    except msgspec.DecodeError as exc:
        raise ArtifactError(f"{file}: malformed manifest: {exc}") from exc
    if manifest.format not in READABLE:
        raise ArtifactError(
            f"{file}: artifact format {manifest.format}, expected one of {READABLE}; "
            "rebuild it with `python -m models build`"
        )
    return manifest


def verify(path: Path, manifest: Manifest) -> None:
    """Check that every file the manifest lists exists with its size and sha256."""
    expected = set(FILES.values()) | (set(TITLE_FILES) if manifest.titles else set())
    expected |= {COOCCUR_FILE} if manifest.cooccur else set()
    expected |= {semantic.THRESHOLDS_FILE} if manifest.semantic else set()
    if set(manifest.files) != expected:
        raise ArtifactError(
            f"{path}: manifest lists {sorted(manifest.files)}, expected {sorted(expected)}"
        )
    for name, entry in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: missing {name}")
        if file.stat().st_size != entry.bytes:
            raise ArtifactError(
                f"{path}: {name} is {file.stat().st_size} bytes, manifest says {entry.bytes}"
            )
    for name, digest in _digests(path, list(manifest.files)).items():
        if digest != manifest.files[name].sha256:
            raise ArtifactError(f"{path}: checksum mismatch for {name} (corrupt or edited)")


def load(
    path: Path, *, encoder_threads: int = 1, blas_threads: int | None = 1, check: bool = True
) -> Artifacts:
    """Load a verified artifact folder, refusing a corrupt or inconsistent one.

    `blas_threads` caps numpy's BLAS pool for the process (None leaves it alone): ranking
    runs many tiny matmuls, where BLAS threads only contend with request threads (measured
    at 100k tracks under load: rank 3.6 ms mean with the default pool, 1.1 ms with one).
    """
    if blas_threads is not None:
        threadpool_limits(blas_threads, user_api="blas")
    path = Path(path)
    manifest = read_manifest(path)
    if check:
        verify(path, manifest)
    try:
        catalog = Catalog.load(path / FILES["catalog"])
        # What every miss reads, made now rather than on the first request (song codes take
        # ~1.7 s at a million tracks, longer than a miss may take), and before the index:
        # Arrow's allocator keeps what its kernels freed (~160 MB at a million tracks), and
        # handing that back before the index arrives keeps it out of the process's peak.
        catalog.prepare()
        pa.default_memory_pool().release_unused()
        index = TrackIndex.load(
            path / FILES["index"],
            path / FILES["vectors"],
            path / FILES["projection"],
            manifest.index_dim,
            manifest.index.ef_search,
        )
        encoder = PromptEncoder(
            path / FILES["encoder"],
            path / FILES["tokenizer"],
            max_tokens=int(manifest.encoder["max_tokens"]),
            intra_op_threads=encoder_threads,
        )
        fallbacks = FallbackPlaylists.load(path / FILES["fallbacks"])
        titles = (
            None
            if manifest.titles is None
            else TitleModel.load(path, manifest.dim, manifest.titles, manifest.tracks)
        )
        cooccur = None if manifest.cooccur is None else _load_cooccur(path, manifest)
        if manifest.semantic is not None:
            stored = msgspec.json.decode(
                (path / semantic.THRESHOLDS_FILE).read_bytes(), type=Thresholds
            )
            if stored != manifest.semantic:
                raise ArtifactError(f"{semantic.THRESHOLDS_FILE} differs from the manifest's")
    except (ModelError, msgspec.DecodeError, OSError, KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: cannot load: {exc}") from exc
    if len(catalog) != manifest.tracks or len(index) != manifest.tracks:
        raise ArtifactError(
            f"{path}: manifest says {manifest.tracks} tracks, catalog has "
            f"{len(catalog)} and index {len(index)}"
        )
    if encoder.dim != index.input_dim:
        raise ArtifactError(
            f"{path}: encoder dim {encoder.dim} != projection input dim {index.input_dim}"
        )
    parser = parser_for(catalog)
    return Artifacts(path, manifest, catalog, index, encoder, fallbacks, parser, titles, cooccur)


def _load_cooccur(path: Path, manifest: Manifest) -> np.ndarray:
    factors: np.ndarray = np.load(path / COOCCUR_FILE, allow_pickle=False)
    if factors.dtype != np.float16 or factors.ndim != 2 or len(factors) != manifest.tracks:
        raise ArtifactError(
            f"{path}: {COOCCUR_FILE} is {factors.dtype} {factors.shape}, expected "
            f"float16 with {manifest.tracks} rows"
        )
    return factors
