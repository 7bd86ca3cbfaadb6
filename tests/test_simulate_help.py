"""`ibwatch simulate --help` names every operation the simulator serves."""

from __future__ import annotations

import argparse

from watcher import cli
from watcher.simulator.scenario import OPERATIONS


def test_simulate_help_names_every_operation_the_simulator_serves() -> None:
    parser = cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(commands.choices["simulate"].format_help().split())
    missing = [name for name in (*OPERATIONS, "CloudWatch Logs GetLogEvents") if name not in text]
    assert missing == []
