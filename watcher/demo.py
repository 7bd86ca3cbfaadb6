"""`ibwatch demo`: the daemon's engine and the embedded simulator in one process.

Plays the demo scenario, prints each transition as it happens, and exits 0 once
every build in the scenario has ended. Needs no AWS account: the simulator takes
any credentials, so the demo signs with placeholder ones of its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

from aiobotocore.session import AioSession

from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.config import from_mapping
from watcher.daemon import build_engine, build_sinks
from watcher.simulator import Simulator, load_scenario
from watcher.store import SqliteStore
from watcher.summary import duration_text

# Shipped inside the package so `ibwatch demo` works wherever it is installed;
# config/demo-scenario.toml in the repository is a link to it.
DEMO_SCENARIO = Path(__file__).resolve().parent / "simulator" / "scenarios" / "demo.toml"


async def run_demo(scenario_path: Path, *, clock: Clock, out: TextIO, interval: float = 0.5) -> int:
    scenario = load_scenario(scenario_path)
    arns = [image.arn for image in scenario.images]
    session = AioSession()
    session.set_credentials("DEMOACCESSKEY", "demo-secret-not-used-by-the-simulator")
    started = clock.monotonic()
    with tempfile.TemporaryDirectory(prefix="ibwatch-demo-") as state_dir:
        config = from_mapping(
            {
                "aws": {"region": "us-east-1"},
                "watch": {"arns": arns, "intervals": {"default": interval}, "max_tps": 10},
                "state": {"path": str(Path(state_dir) / "demo-state.db")},
                "sinks": [{"type": "log"}],
            },
            source="ibwatch demo",
        )
        async with Simulator(scenario, clock=clock) as endpoint_url:
            _say(
                out,
                f"ibwatch demo: watching {len(arns)} builds on the embedded simulator at "
                f"{endpoint_url} (scenario {scenario.name!r}, {scenario.time_scale:g}x speed)",
            )
            store = await SqliteStore.open(config.state.path)
            try:
                async with AwsImageSource(
                    clock=clock, endpoint_url=endpoint_url, region="us-east-1", session=session
                ) as source:
                    await source.warm(arns)
                    engine = build_engine(
                        config,
                        source=source,
                        store=store,
                        clock=clock,
                        sinks=build_sinks(config.sinks),
                    )
                    result = await engine.run(config.watch.arns, stop_when_ended=True)
            finally:
                await store.close()
    elapsed = duration_text(clock.monotonic() - started)
    _say(out, f"ibwatch demo: every build has ended after {elapsed}:")
    for watch in result.watches.values():
        snapshot = watch.tracked.snapshot if watch.tracked else None
        status = snapshot.status.value if snapshot else f"error: {watch.error}"
        name = f"{snapshot.name} {snapshot.version}/{snapshot.build}" if snapshot else watch.arn
        _say(out, f"  {name:<28} {status}")
    return 0


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
