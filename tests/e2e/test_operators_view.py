"""The operators' view against a real `python -m edge` process: the playground driven in
headless Chromium (Debian's chromium and chromium-driver, through selenium), and every metric
the Grafana dashboard and the Prometheus rules name present in the node's /metrics."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.binaries import require

from .conftest import served

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "edge.json"
RULES = ROOT / "deploy" / "prometheus" / "edge-rules.yml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target, not the node."""


@pytest.fixture(scope="module")
def node(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(artifact_dir, tmp_path_factory.mktemp("edge-data")) as port:
        yield f"http://127.0.0.1:{port}"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _exposed(text: str) -> set[str]:
    """Every series name the exposition can hold: a counter's `_total`, a histogram's
    `_bucket`, `_count` and `_sum` (also before the first observation of a labelled one)."""
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _named(expr: str) -> set[str]:
    """Metric names in a PromQL expression (recording rules' names hold a colon: skipped)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r"\b(?:edge|process)_[a-z0-9_]+\b", without_labels)) | {
        word for word in PROMETHEUS_OWN if re.search(rf"\b{word}\{{", expr)
    }


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def _rule_exprs() -> tuple[list[str], set[str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return [str(r["expr"]) for r in rules], {r["record"] for r in rules if "record" in r}


def test_every_metric_of_the_dashboard_and_the_rules_is_in_the_nodes_metrics(node: str) -> None:
    """Each name the dashboard's queries and the rules' expressions use is exposed by a
    running node (a renamed metric would leave a blank panel or an alert that never fires);
    recorded series the dashboard reads are defined by the rules."""
    _get(node + "/v1/playlists?q=metrics+probe+jazz&n=5")
    exposed = _exposed(_get(node + "/metrics")) | PROMETHEUS_OWN
    rule_exprs, recorded = _rule_exprs()
    dashboard = _dashboard_exprs()
    assert len(dashboard) >= 12
    for expr in [*rule_exprs, *dashboard]:
        missing = _named(expr) - exposed
        assert not missing, f"{sorted(missing)} not in /metrics (used by {expr!r})"
    for expr in dashboard:
        for name in re.findall(r"\bedge:[a-z0-9_:]+", expr):
            assert name in recorded, f"{name} is not recorded by {RULES.name}"


def test_the_playground_in_headless_chromium(node: str, tmp_path: Path) -> None:
    """Type a prompt, read the rendered tracks (title and artist) with X-Cache, Server-Timing
    and version; ask again and see HIT-L1 with the same tracks; the live panel counts it;
    the browser reports no Content-Security-Policy violation."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = require("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the suite may run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=require("chromedriver"), log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        wait = WebDriverWait(driver, 30, poll_frequency=0.1)
        driver.get(node + "/")
        assert driver.title.startswith("Playlist edge")
        driver.find_element(By.ID, "prompt").send_keys("late night neon synthwave drive")
        driver.find_element(By.ID, "ask").click()
        wait.until(lambda d: d.find_element(By.ID, "x-cache").text not in ("", "—"))
        first = driver.find_element(By.ID, "x-cache").text
        assert not first.startswith("HIT"), first  # a fresh node has never seen the prompt
        tracks = [
            (
                li.find_element(By.CLASS_NAME, "title").text,
                li.find_element(By.CLASS_NAME, "artist").text,
            )
            for li in driver.find_elements(By.CSS_SELECTOR, "#tracks li")
        ]
        assert len(tracks) == 10
        assert all(title and artist for title, artist in tracks)
        assert driver.find_element(By.ID, "status").text == "200"
        assert re.fullmatch(r"v\w+", driver.find_element(By.ID, "version").text)
        assert "dur=" in driver.find_element(By.ID, "server-timing").text

        driver.find_element(By.ID, "again").click()
        wait.until(lambda d: d.find_element(By.ID, "x-cache").text == "HIT-L1")
        again = [
            li.find_element(By.CLASS_NAME, "title").text
            for li in driver.find_elements(By.CSS_SELECTOR, "#tracks li")
        ]
        assert again == [title for title, _ in tracks]
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#tier-table tr[data-tier="HIT-L1"]'))
        assert driver.find_element(By.ID, "hit-ratio").text.endswith("%")
        shot = Path(os.environ.get("PLAYGROUND_SCREENSHOT", tmp_path / "playground.png"))
        assert driver.save_screenshot(str(shot))
        violations = [
            entry["message"]
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
        ]
        assert not violations, violations
    finally:
        driver.quit()
