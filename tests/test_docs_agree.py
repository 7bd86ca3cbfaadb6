"""What the documentation states about the configuration is what the code does:
each sentence checked here was once wrong."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from watcher.config import ServerConfig, from_mapping
from watcher.config.sinks import AnySink

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


def test_the_example_config_names_every_sink_type() -> None:
    text = (ROOT / "config" / "watcher.example.toml").read_text()
    stated = re.search(r"Known types:\s*#?\s*([a-z, #\n]+?)\s*\(", text)
    assert stated is not None
    named = {word for word in re.split(r"[,\s#]+", stated.group(1)) if word}
    assert named == {model.model_fields["type"].default for model in typing.get_args(AnySink)}


def test_the_readme_states_the_listen_default_and_how_a_container_sets_it() -> None:
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("`[server] listen` (default") :][:300]
    assert f"default `{ServerConfig().listen}` everywhere, containers included" in sentence
    assert 'listen = "0.0.0.0:9108"' in (ROOT / "deploy/kubernetes/configmap.yaml").read_text()


def test_the_secret_example_states_the_url_schemes_the_config_accepts(tmp_path: Path) -> None:
    text = (ROOT / "deploy/kubernetes/secret.yaml").read_text()
    assert "a sink URL must start with\n# https:// or http://" in text
    for url in ("https://hooks.example/x", "http://receiver.internal:8080/x"):
        sinks = [{"type": "webhook", "url_env": "URL"}]
        config = from_mapping({"watch": {"arns": [ARN]}, "sinks": sinks}, env={"URL": url})
        assert config.sinks[0].type == "webhook"
