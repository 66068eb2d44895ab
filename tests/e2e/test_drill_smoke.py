"""A short redis-kill drill: real topology, real fault, the drill's own verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_redis_kill_drill_passes(artifact_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "loadtest.drills", "redis-kill", "--duration", "15"]
    cmd += ["--concurrency", "4", "--artifacts", str(artifact_dir), "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert "**Verdict: PASS**" in report
    assert (tmp_path / "timeline.png").stat().st_size > 0
    assert not (tmp_path / "topology" / "state.json").exists()  # the drill stopped its region
