"""Commands for the people running the daemon: `check-config`, `notify-test` and
`deliveries list|replay`. They print what they found; secrets never appear."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TextIO

from watcher.clock import Clock
from watcher.config import Config
from watcher.model import Ami, ImageSnapshot, ImageStatus, Outputs, Transition
from watcher.sinks.base import DeliveryError
from watcher.sinks.http import HttpPoster
from watcher.store import SqliteStore
from watcher.tracker import observe
from watcher.wiring import build_sink

SAMPLE_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/ibwatch-notify-test/1.0.0/1"


def check_config(config: Config, out: TextIO) -> int:
    out.write(json.dumps(config.redacted(), indent=2, default=str, ensure_ascii=False) + "\n")
    out.write(f"config is valid: {len(config.watch.arns)} ARN(s), {len(config.sinks)} sink(s)\n")
    return 0


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
    store = await SqliteStore.open(config.state.path)
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
    config: Config, *, seqs: list[int] | None, sink: str | None, clock: Clock, out: TextIO
) -> int:
    store = await SqliteStore.open(config.state.path)
    try:
        moved = await store.replay(seqs or None, sink, clock.now().timestamp())
    finally:
        await store.close()
    out.write(
        f"{moved} dead letter(s) back in the outbox; a running daemon sends them within 30 s\n"
    )
    return 0


def _describe(event: Transition) -> str:
    previous = event.previous.status.value if event.previous else "-"
    return (
        f"{event.image.name} {event.image.version}/{event.image.build} "
        f"{previous}->{event.current.status.value}  id={event.id}"
    )
