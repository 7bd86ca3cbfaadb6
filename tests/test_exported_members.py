"""The public surface is exactly what is intended; anything else is private."""

from __future__ import annotations

import watcher
import watcher.simulator
import watcher.testing


def test_package_exports() -> None:
    assert sorted(watcher.__all__) == ["Clock", "SystemClock", "__version__"]


def test_simulator_exports() -> None:
    assert sorted(watcher.simulator.__all__) == [
        "Counters",
        "Scenario",
        "ScenarioError",
        "Simulator",
        "Step",
        "load_scenario",
    ]


def test_testing_exports() -> None:
    assert sorted(watcher.testing.__all__) == [
        "FakeClock",
        "RecordingSink",
        "ScriptedSource",
        "TimelessSink",
        "VirtualClock",
    ]


def test_exported_names_exist() -> None:
    for module in (watcher, watcher.simulator, watcher.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
