"""`ibwatch run` and the operator commands with `[state] url_env`: the same daemon
and commands as on the SQLite file, their state in a real PostgreSQL database, and
the URL's password in no output."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import anyio
import psycopg
import pytest

from tests.cli.in_thread import ibwatch
from tests.cli.support import IBWATCH, LineReader
from tests.cli.test_run_restart import ARNS, STEPS, changes, has_status
from tests.pg_support import PASSWORD
from tests.support import scenario
from tests.test_store import snapshot
from watcher.config import load
from watcher.operator_commands import check_config, list_deliveries, replay_deliveries
from watcher.simulator import Simulator
from watcher.store import PostgresStore
from watcher.testing import FakeClock
from watcher.tracker import observe


def write_config(tmp_path: Path, endpoint_url: str = "http://127.0.0.1:9") -> Path:
    arns = ", ".join(f'"{a}"' for a in ARNS)
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\narns = [{arns}]\nmax_tps = 50\n[watch.intervals]\ndefault = "0.1s"\n'
        '[state]\nurl_env = "IBWATCH_TEST_DATABASE_URL"\n'
        '[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )
    return path


async def stored_transitions(url: str) -> dict[str, list[tuple[str | None, str]]]:
    async with await psycopg.AsyncConnection.connect(url) as db:
        cursor = await db.execute("SELECT payload FROM events ORDER BY seq")
        stored = [json.loads(payload) for (payload,) in await cursor.fetchall()]
    per_build: dict[str, list[tuple[str | None, str]]] = {}
    for event in stored:
        previous = event["previous"]["status"] if event["previous"] else None
        per_build.setdefault(event["image"]["arn"], []).append(
            (previous, event["current"]["status"])
        )
    return per_build


@pytest.mark.timeout(90)
async def test_a_daemon_on_postgres_killed_and_restarted_repeats_nothing_and_misses_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = FakeClock()
    env = {**os.environ, "IBWATCH_TEST_DATABASE_URL": postgres_url}
    async with Simulator(
        scenario([{"arn": a, "timeline": STEPS} for a in ARNS]), clock=clock
    ) as endpoint:
        config = write_config(tmp_path, endpoint)
        command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
        async with (
            await anyio.open_process(command, env=env) as first,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(has_status("BUILDING"))
            first.send_signal(signal.SIGKILL)
            await first.wait()
        first_lines = reader.lines

        clock.advance(1000)

        async with (
            await anyio.open_process(command, env=env) as second,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(second)
            group.start_soon(reader.pump)
            await reader.until(has_status("AVAILABLE"))
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await second.wait() == 0

    assert await stored_transitions(postgres_url) == {
        arn: [(None, "BUILDING"), ("BUILDING", "AVAILABLE")] for arn in ARNS
    }
    [started] = [line for line in reader.json_lines() if line.get("event") == "ibwatch.started"]
    assert started["config"]["state"]["url"].startswith("postgresql://ibwatch_test:[REDACTED]@/")
    assert not any(PASSWORD in line for line in first_lines + reader.lines)
    assert [c["status"] for c in changes(reader.json_lines())].count("AVAILABLE") == len(ARNS)


async def test_operator_commands_work_against_the_database(
    tmp_path: Path, postgres_url: str
) -> None:
    """check-config, `deliveries list` and `deliveries replay`, as the CLI calls them
    (in this process: starting three more ibwatch processes would only add seconds)."""
    config = load(write_config(tmp_path), env={"IBWATCH_TEST_DATABASE_URL": postgres_url})
    store = await PostgresStore.open(postgres_url)
    tracked, events = observe(ARNS[0], None, snapshot("BUILDING", arn=ARNS[0], build=1))
    await store.commit(ARNS[0], tracked, events, {events[0].id: ["log"]}, now=1.0)
    [pending] = await store.pending("log")
    await store.bury(pending.seq, "HTTP 400: bad payload", now=2.0)
    await store.close()

    checked, listed, replayed = io.StringIO(), io.StringIO(), io.StringIO()
    assert check_config(config, checked) == 0
    assert await list_deliveries(config, listed) == 0
    assert (
        await replay_deliveries(config, seqs=None, sink=None, clock=FakeClock(), out=replayed) == 0
    )

    shown = json.loads(checked.getvalue()[: checked.getvalue().rindex("}") + 1])["state"]
    assert shown["url"].startswith("postgresql://ibwatch_test:[REDACTED]@/")
    assert "attempts=0  reason: HTTP 400: bad payload" in listed.getvalue()
    assert replayed.getvalue().startswith("1 dead letter(s) back in the outbox")
    assert all(PASSWORD not in out.getvalue() for out in (checked, listed, replayed))
    store = await PostgresStore.open(postgres_url)
    assert [d.event.id for d in await store.pending("log")] == [events[0].id]
    await store.close()


async def test_an_unreachable_database_stops_run_with_exit_2_naming_it(tmp_path: Path) -> None:
    """In-process (`tests/cli/in_thread.py`): the store is opened, and refused, before
    the daemon takes any signal."""
    url = f"postgresql://ibwatch:{PASSWORD}@/ibwatch?host={tmp_path}/no-server-here"
    with anyio.fail_after(30):
        done = await ibwatch(
            "run", "--config", str(write_config(tmp_path)), env={"IBWATCH_TEST_DATABASE_URL": url}
        )
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 2
    assert (
        f"ibwatch: postgresql://ibwatch:[REDACTED]@/ibwatch?host={tmp_path}/no-server-here: " in err
    )
    assert "cannot use the database" in err
    assert PASSWORD not in out + err
    assert "Traceback" not in err
