"""The discovery settings a config gets when it says nothing, and that the example
config states them as they are."""

from __future__ import annotations

from pathlib import Path

from watcher.config import load

PIPELINE = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
EXAMPLE = Path(__file__).parents[2] / "config" / "watcher.example.toml"


def test_discovery_lists_every_minute_and_grants_two_minutes_of_not_found_by_default(
    tmp_path: Path,
) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[aws]\nregion = "us-east-1"\n[watch]\npipelines = ["{PIPELINE}"]\n')
    watch = load(path, env={}).watch
    assert watch.discovery_interval == 60.0
    assert watch.not_found_grace == 120.0


def test_the_example_config_states_the_discovery_defaults(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[aws]\nregion = "us-east-1"\n[watch]\npipelines = ["{PIPELINE}"]\n')
    defaults, example = load(path, env={}).watch, load(EXAMPLE, env={}).watch
    assert example.discovery_interval == defaults.discovery_interval
    assert example.not_found_grace == defaults.not_found_grace
