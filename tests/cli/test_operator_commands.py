"""check-config, notify-test and deliveries, as an operator runs them: through the
CLI's `main`, in-process (`tests/cli/in_thread.py`)."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.cli.in_thread import ibwatch
from tests.delivery.receiver import receiving
from tests.support import WEB_BASE
from watcher.clock import SystemClock
from watcher.config import Config, load
from watcher.model import ImageSnapshot
from watcher.operator_commands import check_config, replay_deliveries, sample_event
from watcher.store import SqliteStore
from watcher.tracker import observe

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_TOKEN_PATH = "/services/T000/B000/SECRET-SLACK-TOKEN"


def write_config(tmp_path: Path, extra: str = "", state: str = "state.db") -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        f'[watch]\narns = ["{WEB_BASE}"]\n[state]\npath = "{state}"\n'
        '[[sinks]]\ntype = "log"\n'
        '[[sinks]]\ntype = "webhook"\nname = "hook"\nurl_env = "OPS_HOOK_URL"\n'
        'secret_env = "OPS_HOOK_SECRET"\n'
        '[[sinks]]\ntype = "slack"\nname = "chat"\nurl_env = "OPS_SLACK_URL"\n' + extra
    )
    return path


async def test_check_config_prints_the_effective_config_without_secrets(tmp_path: Path) -> None:
    env = {
        "OPS_HOOK_URL": "https://receiver.example/hooks/SECRET-HOOK-PATH",
        "OPS_HOOK_SECRET": SECRET,
        "OPS_SLACK_URL": f"https://hooks.slack.com{SLACK_TOKEN_PATH}",
    }
    done = await ibwatch("check-config", "--config", str(write_config(tmp_path)), env=env)
    assert done.returncode == 0, done.stderr
    assert "SECRET-" not in done.stdout
    assert SECRET not in done.stdout
    document = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    hook, chat = document["sinks"][1:]
    assert (hook["url"], hook["secret"]) == ("https://receiver.example/…", "**********")
    assert chat["url"] == "https://hooks.slack.com/…"
    assert done.stdout.rstrip().endswith(
        "config is valid: 1 build ARN(s), 0 version ARN(s), 0 pipeline(s), 3 sink(s)"
    )


async def test_check_config_names_a_missing_secret_variable_and_exits_2(tmp_path: Path) -> None:
    done = await ibwatch(
        "check-config", "--config", str(write_config(tmp_path)), env={"OPS_HOOK_SECRET": SECRET}
    )
    assert done.returncode == 2
    assert "sinks[1]: url_env: environment variable OPS_HOOK_URL is not set or empty" in done.stderr
    assert "whsec_" not in done.stderr


async def test_notify_test_reports_each_sink_and_exits_1_when_one_fails(tmp_path: Path) -> None:
    clock = SystemClock()
    async with (
        receiving(clock, path="/hooks/SECRET-HOOK-PATH") as hook,
        receiving(clock, (404, {}), path=SLACK_TOKEN_PATH) as slack,
    ):
        env = {"OPS_HOOK_URL": hook.url, "OPS_HOOK_SECRET": SECRET, "OPS_SLACK_URL": slack.url}
        done = await ibwatch("notify-test", "--config", str(write_config(tmp_path)), env=env)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "log (log): ok",
        "hook (webhook): ok",
        "chat (slack): FAILED (permanent): HTTP 404: nope",
    ]
    [arrival] = hook.arrivals
    Webhook(SECRET).verify(arrival.body, arrival.headers)
    assert arrival.json["data"]["current"]["status"] == "AVAILABLE"
    assert "blocks" in slack.arrivals[0].json
    assert "SECRET-" not in done.stdout + done.stderr


async def test_notify_test_of_one_sink_and_of_an_unknown_one(tmp_path: Path) -> None:
    clock = SystemClock()
    async with receiving(clock, path="/hooks/SECRET-HOOK-PATH") as hook:
        env = {
            "OPS_HOOK_URL": hook.url,
            "OPS_HOOK_SECRET": SECRET,
            "OPS_SLACK_URL": "https://hooks.slack.invalid/x",
        }
        config = str(write_config(tmp_path))
        one = await ibwatch("notify-test", "--config", config, "--sink", "hook", env=env)
        unknown = await ibwatch("notify-test", "--config", config, "--sink", "pager", env=env)
    assert (one.returncode, one.stdout) == (0, "hook (webhook): ok\n")
    assert unknown.returncode == 2
    assert unknown.stdout == "no sink named 'pager'; the config has: log, hook, chat\n"


async def commit_sample_event(store: SqliteStore, sinks: list[str]) -> None:
    """The notify-test sample event, committed for `sinks` as the engine would."""
    event = sample_event(SystemClock())
    snapshot = ImageSnapshot(
        arn=WEB_BASE,
        status=event.current.status,
        name="web-base",
        version="1.4.0",
        build=7,
        observed_at=event.observed_at,
    )
    tracked, _ = observe(WEB_BASE, None, snapshot)
    await store.commit(WEB_BASE, tracked, [event], {event.id: sinks}, now=1.0)


async def test_deliveries_list_and_replay(tmp_path: Path) -> None:
    env = {
        "OPS_HOOK_URL": "https://receiver.example/hooks/SECRET-HOOK-PATH",
        "OPS_HOOK_SECRET": SECRET,
        "OPS_SLACK_URL": "https://hooks.slack.com/x",
    }
    config_path = write_config(tmp_path)
    config = load(config_path, env=env)
    store = await SqliteStore.open(config.state.path)
    await commit_sample_event(store, sinks=["hook", "chat"])
    [pending_hook] = await store.pending("hook")
    await store.bury(pending_hook.seq, "HTTP 400: bad payload", now=2.0)
    await store.close()

    listed = await ibwatch("deliveries", "list", "--config", str(config_path), env=env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0] == "pending:"
    assert "chat  ibwatch-notify-test 1.0.0/1 BUILDING->AVAILABLE" in lines[1]
    assert lines[2] == "dead letters:"
    assert lines[3].endswith("attempts=0  reason: HTTP 400: bad payload")

    # A number or sink that names nothing is a typo: exit 2, nothing moved.
    typo = await ibwatch(
        "deliveries", "replay", "--config", str(config_path), "--sink", "hoook", env=env
    )
    assert (typo.returncode, typo.stdout) == (2, "")
    assert "--sink 'hoook': no such sink (did you mean 'hook'?)" in typo.stderr
    replayed = await ibwatch("deliveries", "replay", "--config", str(config_path), env=env)
    assert replayed.returncode == 0
    assert replayed.stdout.startswith("1 dead letter(s) back in the outbox")
    with sqlite3.connect(config.state.path) as db:
        sinks = sorted(row[0] for row in db.execute("SELECT sink FROM deliveries"))
        dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    assert (sinks, dead) == (["chat", "hook"], 0)


async def dead_letter_numbered(config_path: Path, env: dict[str, str]) -> tuple[Config, int]:
    config = load(config_path, env=env)
    store = await SqliteStore.open(config.state.path)
    await commit_sample_event(store, sinks=["hook"])
    [pending] = await store.pending("hook")
    await store.bury(pending.seq, "HTTP 400", now=2.0)
    await store.close()
    return config, pending.seq


async def test_replay_of_an_unknown_number_exits_2_and_moves_nothing(tmp_path: Path) -> None:
    env = {
        "OPS_HOOK_URL": "https://r.example/h",
        "OPS_HOOK_SECRET": SECRET,
        "OPS_SLACK_URL": "https://r.example/s",
    }
    config, seq = await dead_letter_numbered(write_config(tmp_path), env)
    out, err = io.StringIO(), io.StringIO()
    args = {"sink": None, "clock": SystemClock(), "out": out, "err": err}
    assert await replay_deliveries(config, seqs=[seq, seq + 40], **args) == 2
    assert err.getvalue() == (
        f"ibwatch: no dead letter numbered {seq + 40}; `ibwatch deliveries list` shows them\n"
    )
    # Right number, wrong sink: the sink's letters are what is numbered.
    assert await replay_deliveries(config, seqs=[seq], **{**args, "sink": "chat"}) == 2
    assert f"no dead letter of sink 'chat' numbered {seq};" in err.getvalue()
    store = await SqliteStore.open(config.state.path)
    assert [d.seq for d in await store.dead_letters()] == [seq]
    await store.close()
    assert await replay_deliveries(config, seqs=[seq], **{**args, "sink": "hook"}) == 0
    assert out.getvalue().startswith("1 dead letter(s) back in the outbox")


def test_check_config_refuses_a_state_file_the_daemon_could_not_create(tmp_path: Path) -> None:
    env = {
        "OPS_HOOK_URL": "https://r.example/h",
        "OPS_HOOK_SECRET": SECRET,
        "OPS_SLACK_URL": "https://r.example/s",
    }
    (tmp_path / "not-a-dir").write_text("")
    for state, why in [
        ("missing/state.db", f"the directory {tmp_path / 'missing'} does not exist"),
        ("not-a-dir/state.db", f"{tmp_path / 'not-a-dir'} is not a directory"),
        (".", "is a directory"),
        # The file system refuses even to look (as for a directory this user cannot
        # search): said with the path, not as a bare "ibwatch: <strerror>".
        (f"{'x' * 300}/state.db", "cannot check it: File name too long"),
    ]:
        path = write_config(tmp_path, state=state)
        out, err = io.StringIO(), io.StringIO()
        assert check_config(load(path, env=env), out, err) == 2, state
        assert err.getvalue().startswith("ibwatch: state.path: "), state
        assert why in err.getvalue(), state
        assert out.getvalue() == ""
