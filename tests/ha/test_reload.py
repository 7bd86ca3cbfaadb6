"""SIGHUP on a standby, in-process on a real PostgreSQL: the new config waits for the
standby's next term, and its idle engine watches nothing meanwhile."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio

from tests.ha.leaders import replica, until
from watcher.clock import SystemClock
from watcher.config import load
from watcher.daemon import open_service, serve

FAILOVER = 1.0
ARNS = [f"arn:aws:imagebuilder:us-east-1:123456789012:image/reload-{n}/1.0.0/1" for n in range(2)]


def write_config(path: Path, arns: list[str]) -> Path:
    """Never polled successfully: the endpoint refuses connections, and the test only
    looks at what the engine watches."""
    listed = ", ".join(f'"{arn}"' for arn in arns)
    path.write_text(
        '[aws]\nregion = "us-east-1"\nendpoint_url = "http://127.0.0.1:9"\n'
        f"[watch]\narns = [{listed}]\n"
        f'[state]\nurl_file = "database-url"\n[ha]\nfailover = "{FAILOVER:g}s"\n'
        '[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )
    return path


async def test_sighup_on_a_standby_waits_for_its_next_term(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "database-url").write_text(postgres_url)
    config = write_config(tmp_path / "watcher.toml", ARNS[:1])
    send, receive = anyio.create_memory_object_stream[int](4)
    leading = anyio.CancelScope()

    async def lead_until_cancelled() -> None:
        with leading:
            await leader.leadership.run(leader.lead)

    async with (
        send,
        receive,
        replica(postgres_url, SystemClock(), FAILOVER) as leader,
        open_service(load(config), clock=SystemClock()) as service,
        anyio.create_task_group() as group,
    ):
        group.start_soon(lead_until_cancelled)
        await until(lambda: leader.leadership.role == "leader")
        group.start_soon(serve, service, receive, config)
        write_config(config, ARNS)
        await send.send(signal.SIGHUP)
        await until(lambda: list(service.config.watch.arns) == ARNS)
        standing_by = dict(service.engine.watches)

        leading.cancel()  # the leader exits: the standby takes over
        await until(lambda: service.leadership.role == "leader")
        await until(lambda: sorted(service.engine.watches) == ARNS)
        await send.send(signal.SIGTERM)  # serve returns
    assert service.leadership.role == "standby"
    assert standing_by == {}, "a standby's engine watches nothing"
