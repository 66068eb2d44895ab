"""EDGE_* settings: typed, validated, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.settings import EdgeSettings, markdown_table


def test_env_values_are_converted_to_their_types() -> None:
    settings = EdgeSettings.from_env(
        {"EDGE_PORT": "9001", "EDGE_WARMUP": "false", "EDGE_TTL": "12.5", "OTHER": "x"}
    )
    assert (settings.port, settings.warmup, settings.ttl) == (9001, False, 12.5)


def test_overrides_win_over_env() -> None:
    """Command-line flags beat EDGE_* variables; None means 'not given'."""
    settings = EdgeSettings.from_env({"EDGE_PORT": "9001"}, port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    "env",
    [
        {"EDGE_PORT": "eighty"},
        {"EDGE_WORKERS": "0"},
        {"EDGE_TTL_JITTER": "1.5"},
        {"EDGE_DEFAULT_LENGTH": "500"},
        {"EDGE_SHARED_MAX_AGE": "0"},
        {"EDGE_REFRESH_AHEAD": "0"},
        {"EDGE_CDN_PURGE_URLS": "varnish:6081"},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="EDGE_"):
        EdgeSettings.from_env(env)


def test_settings_round_trip_through_env() -> None:
    """Worker processes rebuild the same settings from the variables the parent exports."""
    settings = EdgeSettings(port=9100, warmup=False, ttl=5.0)
    assert EdgeSettings.from_env(settings.env()) == settings


def test_readme_documents_every_setting() -> None:
    """The README's settings table is the one the field docstrings give (`make settings-table`)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = markdown_table()
    assert table.count("\n") == len(EdgeSettings.__struct_fields__) + 2
    assert table in readme
