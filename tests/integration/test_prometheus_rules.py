"""deploy/prometheus against the real promtool: the rules and scrape config are valid, the
alert unit tests pass, and every alert points at a runbook section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.binaries import require

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "edge-rules.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PROMETHEUS,
    )


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    """`promtool check rules` and `check config` (which loads the rules beside it) pass."""
    rules = _promtool("check", "rules", RULES.name)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_alert_unit_tests_pass() -> None:
    """Every alert case in edge-rules.test.yml fires (or stays quiet) as written."""
    done = _promtool("test", "rules", "edge-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_is_tested_and_has_a_runbook_in_the_drills_doc() -> None:
    """Each alert has a severity, is named in the unit tests, and its runbook_url is an
    anchor of a heading in docs/DRILLS.md."""
    drills = (ROOT / "docs" / "DRILLS.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in drills.splitlines()
        if line.startswith("#")
    }
    tested = (PROMETHEUS / "edge-rules.test.yml").read_text()
    names = {str(rule["alert"]) for rule in _alerts()}
    assert {
        "EdgeAvailabilityBudgetBurn",
        "EdgeHitLatencyBudgetBurn",
        "EdgeBreakerOpen",
        "EdgeWriteBehindDropping",
        "EdgeComputeShedding",
        "EdgeComputeDegraded",
        "EdgeEventStreamLag",
        "EdgeReadinessFlapping",
    } <= names
    for rule in _alerts():
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict), rule
        assert labels["severity"] in ("page", "ticket"), rule
        assert isinstance(annotations, dict), rule
        url = str(annotations["runbook_url"])
        path, _, anchor = url.partition("#")
        assert path == "docs/DRILLS.md", (rule["alert"], url)
        assert anchor in anchors, (rule["alert"], url)
        assert f"alertname: {rule['alert']}" in tested, f"{rule['alert']} has no test case"


def test_burn_rate_alerts_pair_a_long_and_a_short_window() -> None:
    """The SRE workbook's four pairs: 1h/5m at 14.4, 6h/30m at 6 (page), 1d/2h at 3 and
    3d/6h at 1 (ticket), for both SLOs."""
    pairs = {"1h": ("5m", "14.4", "page"), "6h": ("30m", "6", "page")}
    pairs |= {"1d": ("2h", "3", "ticket"), "3d": ("6h", "1", "ticket")}
    for slo in ("EdgeAvailabilityBudgetBurn", "EdgeHitLatencyBudgetBurn"):
        rules = [rule for rule in _alerts() if rule["alert"] == slo]
        assert len(rules) == 4
        for rule in rules:
            labels = rule["labels"]
            assert isinstance(labels, dict)
            short, factor, severity = pairs[str(labels["window"])]
            expr = str(rule["expr"])
            assert f"rate{labels['window']} > ({factor} *" in expr
            assert f"rate{short} > ({factor} *" in expr
            assert labels["severity"] == severity
