"""Commands for the people running the daemon: `check-config`, `notify-test` and
`deliveries list|replay`. They print what they found; secrets never appear."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from watcher._validation import did_you_mean
from watcher.clock import Clock
from watcher.config import Config
from watcher.model import Ami, ImageSnapshot, ImageStatus, Outputs, Transition
from watcher.sinks.base import DeliveryError
from watcher.sinks.http import HttpPoster
from watcher.store import open_store
from watcher.store.base import DeadLetter
from watcher.tracker import observe
from watcher.wiring import build_sink

SAMPLE_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/ibwatch-notify-test/1.0.0/1"


def check_config(config: Config, out: TextIO, err: TextIO | None = None) -> int:
    """Print the effective config (secrets redacted); exit 2 if `run` could not
    use it: its state file cannot be created or written where it says, or a profile
    of `[aws.accounts]` is in neither AWS file."""
    from watcher.credentials import profile_problems  # brings botocore: only here

    # A database is not checked here: that takes a connection (`run` reports it).
    paths = [] if config.state.database_url else state_path_problems(config.state.path)
    problems = [f"state.path: {p}" for p in paths] + profile_problems(config.aws.accounts)
    for problem in problems:
        print(f"ibwatch: {problem}", file=err or sys.stderr)
    if problems:
        return 2
    out.write(json.dumps(config.redacted(), indent=2, default=str, ensure_ascii=False) + "\n")
    counts = watched_counts(config)
    out.write(
        f"config is valid: {counts['build_arns']} build ARN(s), "
        f"{counts['version_arns']} version ARN(s), {counts['pipelines']} pipeline(s), "
        f"{counts['sinks']} sink(s)\n"
    )
    return 0


def watched_counts(config: Config) -> dict[str, int]:
    """What a config watches and where it sends it, counted: `check-config`'s last
    line and the daemon's `ibwatch.started` line say the same. Build ARNs are watched
    themselves; version ARNs and pipelines are sources of builds."""
    watch = config.watch
    return {
        "build_arns": len(watch.build_arns),
        "version_arns": len(watch.version_arns),
        "pipelines": len(watch.pipelines),
        "sinks": len(config.sinks),
    }


def state_path_problems(path: Path) -> list[str]:
    """Why the daemon could not keep its state at `path` (the file, its `-wal`/`-shm`
    companions and its `.lock` all live in that directory); [] if it can."""
    try:
        return _state_path_problems(path)
    except OSError as exc:  # e.g. a parent directory this user cannot search
        return [f"{path}: cannot check it: {exc.strerror or exc}"]


def _state_path_problems(path: Path) -> list[str]:
    directory = path.parent
    if not directory.exists():
        return [f"{path}: the directory {directory} does not exist; create it first"]
    if not directory.is_dir():
        return [f"{path}: {directory} is not a directory"]
    if not os.access(directory, os.W_OK | os.X_OK):
        return [f"{path}: the directory {directory} is not writable by this user"]
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        what = "is a directory" if path.is_dir() else "is not readable and writable by this user"
        return [f"{path} {what}"]
    return []


def sample_event(clock: Clock) -> Transition:
    """A realistic BUILDING -> AVAILABLE transition of a made-up image, with a fresh id
    so receivers that drop repeated ids still show each test."""
    now = clock.now()
    building = ImageSnapshot(
        arn=SAMPLE_ARN,
        status=ImageStatus.BUILDING,
        name="ibwatch-notify-test",
        version="1.0.0",
        build=1,
        type="AMI",
        platform="Linux",
        pipeline="ibwatch-notify-test",
        created=now - timedelta(minutes=42),
        observed_at=now - timedelta(minutes=12),
    )
    available = building.model_copy(
        update={
            "status": ImageStatus.AVAILABLE,
            "observed_at": now,
            "outputs": Outputs(
                amis=(
                    Ami(region="us-east-1", image="ami-0123456789abcdef0"),
                    Ami(region="eu-west-1", image="ami-0fedcba9876543210"),
                )
            ),
        }
    )
    tracked, _ = observe(SAMPLE_ARN, None, building)
    _, [event] = observe(SAMPLE_ARN, tracked, available)
    return event.model_copy(update={"id": f"notify-test-{uuid.uuid4()}"})


async def notify_test(config: Config, *, sink_name: str | None, clock: Clock, out: TextIO) -> int:
    """Send a sample event through each (or one) configured sink, straight, once."""
    sinks = [s for s in config.sinks if sink_name in (None, s.name)]
    if not sinks:
        names = ", ".join(s.name for s in config.sinks)
        out.write(f"no sink named {sink_name!r}; the config has: {names}\n")
        return 2
    event = sample_event(clock)
    failures = 0
    async with HttpPoster() as poster:
        for config_sink in sinks:
            sink = build_sink(config_sink, poster=poster, clock=clock)
            try:
                await sink.send(event)
            except DeliveryError as exc:
                failures += 1
                kind = "gone" if exc.gone else "retryable" if exc.retryable else "permanent"
                out.write(f"{config_sink.name} ({config_sink.type}): FAILED ({kind}): {exc}\n")
            else:
                out.write(f"{config_sink.name} ({config_sink.type}): ok\n")
    return 1 if failures else 0


async def list_deliveries(config: Config, out: TextIO) -> int:
    store = await open_store(config.state, migrate=False)
    try:
        out.write("pending:\n")
        any_pending = False
        for sink in config.sinks:
            for row in await store.pending(sink.name, limit=10_000):
                any_pending = True
                error = f"  last error: {row.last_error}" if row.last_error else ""
                out.write(
                    f"  {row.seq:>6}  {sink.name}  {_describe(row.event)}  "
                    f"attempts={row.attempts}{error}\n"
                )
        if not any_pending:
            out.write("  (none)\n")
        out.write("dead letters:\n")
        dead = await store.dead_letters()
        for letter in dead:
            out.write(
                f"  {letter.seq:>6}  {letter.sink}  {_describe(letter.event)}  "
                f"attempts={letter.attempts}  reason: {letter.reason}\n"
            )
        if not dead:
            out.write("  (none)\n")
    finally:
        await store.close()
    return 0


async def replay_deliveries(
    config: Config,
    *,
    seqs: list[int] | None,
    sink: str | None,
    clock: Clock,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Put dead letters back in the outbox. A sink or number that names nothing is
    a typo, not an empty replay: exit 2, and nothing is moved."""
    store = await open_store(config.state, migrate=False)
    try:
        problems = _replay_problems(config, await store.dead_letters(), seqs, sink)
        if problems:
            for problem in problems:
                print(f"ibwatch: {problem}", file=err or sys.stderr)
            return 2
        moved = await store.replay(seqs or None, sink, clock.now().timestamp())
    finally:
        await store.close()
    out.write(
        f"{moved} dead letter(s) back in the outbox; a running daemon sends them within 30 s\n"
    )
    return 0


def _replay_problems(
    config: Config, dead: Sequence[DeadLetter], seqs: list[int] | None, sink: str | None
) -> list[str]:
    problems = []
    # A sink removed from the config may still own dead letters: they can be replayed.
    names = list(dict.fromkeys([*(s.name for s in config.sinks), *(d.sink for d in dead)]))
    if sink is not None and sink not in names:
        problems.append(
            f"--sink {sink!r}: no such sink{did_you_mean(sink, names)}; "
            f"the config has: {', '.join(s.name for s in config.sinks)}"
        )
    elif seqs:
        numbered = {d.seq for d in dead if sink in (None, d.sink)}
        unknown = [seq for seq in dict.fromkeys(seqs) if seq not in numbered]
        if unknown:
            whose = f" of sink {sink!r}" if sink else ""
            problems.append(
                f"no dead letter{whose} numbered {', '.join(map(str, unknown))}; "
                "`ibwatch deliveries list` shows them"
            )
    return problems


def _describe(event: Transition) -> str:
    previous = event.previous.status.value if event.previous else "-"
    return (
        f"{event.image.name} {event.image.version}/{event.image.build} "
        f"{previous}->{event.current.status.value}  id={event.id}"
    )
