"""Artifact folders: build, verify, refuse corruption, and serve playlists that obey slots."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from models import artifacts, vocab
from models.errors import ArtifactError
from models.ranker import hard_mask
from models.semantic import THRESHOLDS_FILE

CATALOG_SIZE = 20_000  # tests/conftest.py builds this many tracks

PRECISION = 0.8  # share of the top 30 that must carry a named genre or mood


def test_manifest_records_the_build(loaded: artifacts.Artifacts) -> None:
    """The manifest names every file with its checksum, the index params, measured recall and
    the semantic thresholds calibrated for this version."""
    m = loaded.manifest
    assert m.tracks == CATALOG_SIZE == len(loaded.catalog) == len(loaded.index)
    assert set(m.files) == {*artifacts.FILES.values(), THRESHOLDS_FILE}
    assert m.semantic is not None
    assert all(len(entry.sha256) == 64 for entry in m.files.values())
    assert m.dim == 384
    assert m.recall[str(m.index.ef_search)] >= m.index.recall_target
    assert float(m.encoder["parity_min"]) >= 0.98
    assert m.version.startswith("v")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_corrupt_file_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    """Flipping one byte of the index makes loading fail with a checksum error."""
    copy = _copy(artifact_dir, tmp_path)
    index = copy / artifacts.FILES["index"]
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"checksum mismatch for index\.hnsw"):
        artifacts.load(copy)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{"), "malformed manifest"),
        (lambda d: (d / "fallbacks.json").unlink(), "missing fallbacks.json"),
        (lambda d: (d / "catalog.arrow").write_bytes(b"short"), "catalog.arrow is 5 bytes"),
    ],
)
def test_broken_folders_are_refused(
    artifact_dir: Path, tmp_path: Path, mutate: object, message: str
) -> None:
    """Missing or malformed pieces raise ArtifactError naming the problem."""
    copy = _copy(artifact_dir, tmp_path)
    mutate(copy)  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=message):
        artifacts.load(copy)


def test_mismatched_manifest_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    """A manifest whose track count disagrees with the files is refused even if hashes match."""
    copy = _copy(artifact_dir, tmp_path)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["tracks"] += 1
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="tracks"):
        artifacts.load(copy)


def test_unsupported_format_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    """A folder of another artifact format is refused before anything is read."""
    copy = _copy(artifact_dir, tmp_path)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["format"] = 99
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="format 99"):
        artifacts.load(copy)


@pytest.mark.parametrize("genre", ["jazz", "rock", "hip hop", "classical", "techno", "folk"])
def test_genre_precision(loaded: artifacts.Artifacts, genre: str) -> None:
    """A prompt naming a genre gets a top 30 where at least 80 % carry it."""
    intent = loaded.parser.parse(f"some {genre} for tonight")
    playlist, _ = loaded.generator().generate(intent, 30)
    carried = loaded.catalog.has_genre(genre, np.array(playlist.rows))
    assert len(playlist.rows) == 30
    assert carried.mean() >= PRECISION


@pytest.mark.parametrize("mood", [m.name for m in vocab.MOODS])
def test_mood_precision(loaded: artifacts.Artifacts, mood: str) -> None:
    """A prompt naming a mood gets a top 30 where at least 80 % carry it."""
    word = vocab.MOOD_BY_NAME[mood].words[0]
    intent = loaded.parser.parse(f"{word} songs")
    playlist, _ = loaded.generator().generate(intent, 30)
    position = [m.name for m in vocab.MOODS].index(mood)
    bits = loaded.catalog.mood_bits[np.array(playlist.rows)]
    assert ((bits >> position) & 1).mean() >= PRECISION


@pytest.mark.parametrize(
    "prompt",
    [
        "jazz, no vocals",
        "upbeat but no pop",
        "workout without hip hop or metal",
        "nothing sad, clean rap",
        "anything but country, 80s",
        "chill, not lo-fi, no ambient",
    ],
)
def test_exclusion_violations_are_zero(loaded: artifacts.Artifacts, prompt: str) -> None:
    """No track in the top 30 violates an exclusion."""
    intent = loaded.parser.parse(prompt)
    playlist, _ = loaded.generator().generate(intent, 30)
    assert len(playlist.rows) == 30
    assert hard_mask(loaded.catalog, intent.slots, np.array(playlist.rows)).all()


def test_prompt_meaning_reaches_the_ranking(loaded: artifacts.Artifacts) -> None:
    """With no slot words, the encoder alone steers: a gym prompt is more energetic than a
    lullaby prompt."""
    gen = loaded.generator()
    energy = loaded.catalog.features["energy"]
    loud, _ = gen.generate(loaded.parser.parse("pump up the adrenaline, maximum intensity"), 30)
    soft, _ = gen.generate(loaded.parser.parse("gentle lullaby to drift off"), 30)
    assert energy[list(loud.rows)].mean() > energy[list(soft.rows)].mean() + 0.2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_cli_query_prints_playlist_and_timings(artifact_dir: Path) -> None:
    """`python -m models query` prints JSON with tracks and per-stage timings."""
    result = _cli("query", "--artifacts", str(artifact_dir), "calm jazz, no vocals", "-n", "12")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["tracks"]) == 12
    assert out["slots"]["exclude_attributes"] == ["vocals"]
    assert set(out["timings_ms"]) >= {"tokenize", "encode", "search", "rank"}


def test_cli_embed_matches_the_encoder(artifact_dir: Path, loaded: artifacts.Artifacts) -> None:
    """`python -m models embed` prints one unit vector per text, equal to the encoder's."""
    result = _cli("embed", "--artifacts", str(artifact_dir), "rainy day", "gym")
    assert result.returncode == 0, result.stderr
    rows = np.array([json.loads(line) for line in result.stdout.splitlines()])
    assert rows.shape == (2, 384)
    np.testing.assert_allclose(rows, loaded.encoder.encode(["rainy day", "gym"]), atol=1e-6)


def test_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    """A missing artifact folder is a one-line error and exit code 2."""
    result = _cli("query", "--artifacts", str(tmp_path / "nope"), "jazz")
    assert result.returncode == 2
    assert "no manifest.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_build_from_csv_reports_bad_rows(tmp_path: Path, loaded: artifacts.Artifacts) -> None:
    """Building from a CSV skips and reports bad lines by number; --strict fails instead."""
    rows = loaded.catalog.tracks(range(300))
    header = [
        "track_id",
        "track_name",
        "artists",
        "track_genre",
        "popularity",
        *[
            k
            for k in rows[0]
            if k not in {"id", "title", "artist", "genres", "tags", "popularity", "album"}
        ],
    ]
    lines = [",".join(header)]
    for r in rows:
        values = [
            r["id"],
            r["title"],
            r["artist"],
            r["genres"][0],
            r["popularity"],
            *[r[k] for k in header[5:]],
        ]
        lines.append(",".join(str(v) for v in values))
    lines.insert(5, "bad,row,with,too,few")
    csv = tmp_path / "tracks.csv"
    csv.write_text("\n".join(lines) + "\n")
    result = _cli("build", "--catalog", str(csv), "--out", str(tmp_path / "a"), "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = msgspec.json.decode((tmp_path / "a" / "manifest.json").read_bytes())
    assert manifest["tracks"] == 300
    assert manifest["catalog"]["skipped_rows"] == 1
    strict = _cli(
        "build", "--catalog", str(csv), "--out", str(tmp_path / "b"), "--strict", "--quiet"
    )
    assert strict.returncode == 2
    assert "line 6" in strict.stderr
    assert not (tmp_path / "b").exists()
