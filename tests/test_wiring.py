"""From configuration to sinks: every sink type has its builder, what a sink's
constructor refuses is a config problem at load (so `check-config` catches it),
and the packages depend one way only (`config` knows no sink implementation)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from watcher import cli, wiring
from watcher.config import ConfigError
from watcher.config.sinks import AnySink

PACKAGE = Path(wiring.__file__).resolve().parent
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


def write_config(tmp_path: Path, sink: str) -> Path:
    (tmp_path / "hook-url").write_text("https://hooks.example.com/T0/SECRET-PATH\n")
    path = tmp_path / "watcher.toml"
    path.write_text(f'[watch]\narns = ["{ARN}"]\n[state]\npath = "state.db"\n{sink}')
    return path


def test_every_sink_type_of_the_config_has_a_builder() -> None:
    assert set(wiring._BUILDERS) == set(typing.get_args(AnySink))


def test_check_config_refuses_a_header_the_webhook_sink_owns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        '[[sinks]]\ntype = "webhook"\nname = "ci-hook"\nurl_file = "hook-url"\n'
        'headers = { "webhook-id" = "x", "X-Team" = "images" }\n',
    )
    assert cli.main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sinks[0] (ci-hook)" in err
    assert "webhook-id" in err
    assert "SECRET-PATH" not in err
    assert "Traceback" not in err


def test_every_refused_sink_is_named_at_once(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[[sinks]]\ntype = "webhook"\nname = "a"\nurl_file = "hook-url"\n'
        'headers = { "webhook-signature" = "x" }\n'
        '[[sinks]]\ntype = "log"\n'
        '[[sinks]]\ntype = "webhook"\nname = "b"\nurl_file = "hook-url"\n'
        'headers = { "Content-Type" = "text/plain" }\n',
    )
    with pytest.raises(ConfigError) as raised:
        wiring.load_config(path)
    assert [p.split(":")[0] for p in raised.value.problems] == ["sinks[0] (a)", "sinks[2] (b)"]


def test_a_config_whose_sinks_all_build_loads(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[[sinks]]\ntype = "webhook"\nurl_file = "hook-url"\nheaders = { "X-Team" = "images" }\n'
        '[[sinks]]\ntype = "slack"\nurl_file = "hook-url"\n',
    )
    assert [s.name for s in wiring.load_config(path).sinks] == ["webhook", "slack"]


def _imports(module: Path) -> set[str]:
    """The `watcher...` modules a source file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "watcher"}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    for candidate in (
        PACKAGE.joinpath(*parts).with_suffix(".py"),
        PACKAGE.joinpath(*parts, "__init__.py"),
    ):
        if parts and candidate.is_file():
            return candidate
    return None


def _reachable(start: str) -> set[str]:
    """Every watcher module `start` imports, directly or through others (static)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(path))
    return seen


@pytest.mark.parametrize(
    "configuration",
    ["watcher.config", *[f"watcher.config.{p.stem}" for p in (PACKAGE / "config").glob("*.py")]],
)
def test_configuration_imports_no_sink_implementation(configuration: str) -> None:
    assert not {m for m in _reachable(configuration) if m.startswith("watcher.sinks")}


def test_sinks_depend_on_neither_configuration_nor_delivery() -> None:
    for module in (PACKAGE / "sinks").glob("*.py"):
        reached = _reachable(f"watcher.sinks.{module.stem}")
        assert not {
            m
            for m in reached
            if m.startswith(("watcher.config", "watcher.delivery", "watcher.wiring"))
        }, module.name
