"""The Dockerfile passes hadolint (no ignored rules) and keeps its required shape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_gets_every_package_the_project_installs() -> None:
    """`pip install .` in the image sees only what is copied in: a missing package would
    build an image that fails at import."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    text = DOCKERFILE.read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in text, package


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2 or text.count("FROM ") >= 2
    assert "USER 10001" in text  # the non-root uid created above
    assert "HEALTHCHECK" in text
    assert "/readyz" in text
    assert 'ENTRYPOINT ["python", "-m", "edge"]' in text
    assert "hadolint ignore" not in text


def test_base_images_are_pinned_to_exact_versions() -> None:
    """A rebuild gets the same base: x.y.z tags, never `3.11-slim` or `latest`."""
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    pinned = (
        r"redis:\d+\.\d+\.\d+-\w+",
        r"prom/prometheus:v\d+\.\d+\.\d+",
        r"grafana/grafana:\d+\.\d+\.\d+",
    )
    for name, service in doc["services"].items():
        if "image" in service:
            assert any(re.fullmatch(p, service["image"]) for p in pinned), name


def test_the_image_holds_no_pip_and_writes_only_its_data_volume() -> None:
    text = DOCKERFILE.read_text()
    assert "python -m venv --without-pip /opt/venv" in text  # no installer in the image's venv
    assert 'VOLUME ["/var/lib/edge"]' in text
    assert "EDGE_DATA_DIR=/var/lib/edge" in text


def test_compose_describes_two_regions_behind_sentinel() -> None:
    """docker-compose.yml (not run here: no Docker engine): two regions of two edges, each
    region's Redis a primary and a replica watched by three Sentinels; edges read-only."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    edges = {name: s for name, s in services.items() if name.startswith("edge-")}
    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert "--appendonly" in services["redis-global"]["command"]  # the global store is durable
    assert len(edges) == 4
    assert len(sentinels) == 3
    for region in ("r1", "r2"):
        replica = services[f"redis-{region}-b"]["command"]
        assert replica[replica.index("--replicaof") + 1] == f"redis-{region}-a"
        for sentinel in sentinels:
            assert f"sentinel monitor {region} redis-{region}-a 6379 2" in " ".join(
                services[sentinel]["command"]
            )
    for name, service in edges.items():
        env = service["environment"]
        region = env["EDGE_REGION"]
        hosts = ",".join(f"{s}:26379" for s in sentinels)
        assert env["EDGE_L2_URL"] == f"redis+sentinel://{hosts}/{region}", name
        assert env["EDGE_GLOBAL_URL"] == "redis://redis-global:6379/0"
        assert f"USER_HASH_KEY_{region.upper()}" in env["EDGE_USER_HASH_KEY"]  # per region
        assert set(service["depends_on"]) == {*sentinels, "redis-global"}
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        assert service["volumes"] == [f"{name}:/var/lib/edge"]


def test_compose_runs_prometheus_over_every_edge_and_a_provisioned_grafana() -> None:
    """Prometheus mounts deploy/prometheus and scrapes each edge service on its port, with
    its region; Grafana mounts the provisioning (that data source, the dashboards folder) and
    the dashboard; both publish on loopback only."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    edges = sorted(name for name in services if name.startswith("edge-"))
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert set(prometheus["depends_on"]) == set(edges)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["edge-rules.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "edge"]
    scraped = {
        target: group["labels"]["region"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert scraped == {
        f"{name}:8000": services[name]["environment"]["EDGE_REGION"] for name in edges
    }
    assert grafana["depends_on"] == ["prometheus"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "edge.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "edge.json").read_text())
    assert dashboard["uid"] == "playlist-edge"
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Answers per second by X-Cache",
        "Hit ratio",
        "p50 by X-Cache",
        "p99 by X-Cache",
        "Breaker states",
        "Write-behind pending",
        "Write-behind dropped",
        "Compute queue",
        "Encoder batch sizes",
        "Shed and refused requests",
        "CPU per 1,000 prompts",
        "Version split",
    } <= titles
    for service in (prometheus, grafana):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
