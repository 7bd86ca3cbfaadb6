"""The daemon's push fast path, in-process: an EventBridge-shaped message on a real
SQS queue (moto's server on loopback) makes it poll that build at once, long before
any scheduled poll, and the message is deleted once the poll is committed. When the
queue fails, it falls back to polling and says so; it recovers when the queue is back.

The clock is virtual. While a test holds it, time moves only when the test steps it:
a long poll of the queue is real I/O, during which a free-running virtual clock would
run on to the next scheduled poll and steal the event's work.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from tests.cli.in_process import daemon_config, daemon_on, until
from tests.sqs_support import REGION, enforce_iam, make_queue
from tests.support import ACCOUNT, aws_client, scenario, timeline
from watcher import daemon, server
from watcher.daemon import Service
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/1"
OTHER = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/db-base/2.0.0/4"
VERSION = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/api/3.1.0"


def state_change(build_arn: str, previous: str, status: str) -> str:
    """The EventBridge event Image Builder sends (tests/push_samples/ cites its shape)."""
    return json.dumps(
        {
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 Image Builder Image State Change",
            "source": "aws.imagebuilder",
            "account": ACCOUNT,
            "time": "2026-01-01T00:05:01Z",
            "region": "us-east-1",
            "resources": [build_arn],
            "detail": {"previous-state": {"status": previous}, "state": {"status": status}},
        }
    )


@dataclass
class Running:
    service: Service
    clock: VirtualClock
    http: TestClient[Any, Any]
    logs: list[dict[str, Any]]
    sqs: Any
    queue_url: str
    simulator: Simulator

    def status(self, arn: str) -> str | None:
        watch = self.service.engine.watches.get(arn)
        tracked = watch.tracked if watch else None
        return tracked.snapshot.status.value if tracked else None

    async def until(self, condition: Any) -> None:
        await until(condition, self.logs)

    async def until_watching(self, arn: str) -> None:
        """`arn` polled once and the queue read: where an event's story starts."""
        await self.until(lambda: self.status(arn) == "BUILDING")
        await self.until(lambda: self.service.push is not None and self.service.push.health.healthy)

    async def until_stepping(self, condition: Any) -> None:
        """Wait for `condition`, stepping the held clock a tenth of a second at a time,
        so that calls queued for the rate limiter get their turns (the next scheduled
        poll is an hour away: no step reaches it)."""
        with anyio.move_on_after(30):  # real seconds: only a hang reaches it
            while not condition():
                self.clock.advance(0.1)
                await anyio.sleep(0.005)
            return
        raise AssertionError(f"never came true; the daemon logged {self.logs}")

    async def queued(self) -> int:
        """Messages still in the queue, visible or being handled."""
        found = await self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        return sum(int(v) for v in found["Attributes"].values())

    def counted(self, outcome: str) -> float:
        value = self.service.metrics.push_events.labels(outcome)._value.get()
        return float(value)


@asynccontextmanager
async def running(
    tmp_path: Path,
    sqs_endpoint: str,
    watch: str,
    *,
    events: str = "",
    queue_attributes: dict[str, str] | None = None,
) -> AsyncIterator[Running]:
    clock = VirtualClock()
    plan = scenario(
        [
            {"arn": BUILD, "timeline": timeline(("BUILDING", 300), ("AVAILABLE", None))},
            {"arn": OTHER, "timeline": timeline(("BUILDING", 300), ("AVAILABLE", None))},
            {"arn": f"{VERSION}/2", "timeline": timeline(("BUILDING", 300), ("AVAILABLE", None))},
        ]
    )
    queue_url = await make_queue(sqs_endpoint, "ibwatch-events", **(queue_attributes or {}))
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with AsyncExitStack() as stack:
                simulator = Simulator(plan, clock=clock)
                url = await stack.enter_async_context(simulator)
                text = daemon_config(url, tmp_path / "state.db", watch).replace(
                    "[state]",
                    f'[events]\nqueue_url = "{queue_url}"\nwait_time = 1\n{events}'
                    # Each step look-up waits for the limiter's next token: on a clock
                    # the test holds, that would never come.
                    "[diagnostics]\nprogress_share = 0\n[state]",
                )
                config_path.write_text(text)
                sqs = await stack.enter_async_context(aws_client("sqs", sqs_endpoint, REGION))
                service = await stack.enter_async_context(daemon_on(config_path, clock))
                app = server.create_app(daemon.probes_of(service))
                http = await stack.enter_async_context(TestClient(TestServer(app)))
                yield Running(service, clock, http, logs, sqs, queue_url, simulator)
            group.cancel_scope.cancel()


SLOW = '[watch.intervals]\ndefault = "1h"\n'


async def test_an_event_makes_the_daemon_poll_that_build_at_once_then_delete_it(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    watch = f'arns = ["{BUILD}"]\n{SLOW}'
    async with running(tmp_path, sqs_endpoint, watch, events='safety_interval = "2h"\n') as run:
        with run.clock.held():
            await run.until_watching(BUILD)
            run.clock.advance(301)  # AVAILABLE now; the next scheduled poll is 1-2h away
            await run.sqs.send_message(
                QueueUrl=run.queue_url, MessageBody=state_change(BUILD, "BUILDING", "AVAILABLE")
            )
            await run.until(lambda: run.status(BUILD) == "AVAILABLE")
            await run.until(lambda: run.counted("matched") == 1)
            ready = await (await run.http.get("/readyz")).json()
            assert run.clock.monotonic() == 301, "seen by the event's poll, not a scheduled one"
            assert await run.queued() == 0, "deleted once committed"
            events = await run.service.store.events()
    assert [e.current.status.value for e in events] == ["BUILDING", "AVAILABLE"]
    assert ready["push"] == "healthy"
    assert run.counted("received") == 1


async def test_events_of_watched_builds_are_matched_others_dropped_or_refused(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    """A build of a watched version ARN (found by discovery) is polled at once; a build
    of nothing watched is dropped; a message that is not JSON is malformed. All three
    are deleted."""
    watch = f'arns = ["{BUILD}", "{VERSION}"]\ndiscovery_interval = "1h"\n{SLOW}'
    async with running(tmp_path, sqs_endpoint, watch, events='safety_interval = "2h"\n') as run:
        with run.clock.held():
            await run.until_stepping(lambda: run.status(f"{VERSION}/2") == "BUILDING")
            await run.until(
                lambda: run.service.push is not None and run.service.push.health.healthy
            )
            run.clock.advance(301)
            for arn in (f"{VERSION}/2", OTHER):
                await run.sqs.send_message(
                    QueueUrl=run.queue_url, MessageBody=state_change(arn, "BUILDING", "AVAILABLE")
                )
            await run.sqs.send_message(QueueUrl=run.queue_url, MessageBody="not json at all")
            await run.until_stepping(lambda: run.counted("received") == 3)
            await run.until_stepping(
                lambda: (
                    (run.counted("matched"), run.counted("dropped"), run.counted("malformed"))
                    == (1, 1, 1)
                )
            )
            assert run.status(f"{VERSION}/2") == "AVAILABLE"
            await run.until_stepping(
                lambda: [line["event"] for line in run.logs].count("push.deleted") == 3
            )
            assert await run.queued() == 0
    assert run.service.engine.watches[f"{VERSION}/2"].watched == VERSION
    assert OTHER not in run.service.engine.watches
    malformed = [line for line in run.logs if line["event"] == "push.malformed_message"]
    assert len(malformed) == 1
    assert "JSON" in malformed[0]["problem"]


async def test_with_follow_all_an_event_of_any_build_starts_its_watch(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    watch = f'arns = ["{BUILD}"]\n{SLOW}'
    events = 'safety_interval = "2h"\nfollow_all = true\n'
    async with running(tmp_path, sqs_endpoint, watch, events=events) as run:
        with run.clock.held():
            await run.until_watching(BUILD)
            run.clock.advance(301)
            await run.sqs.send_message(
                QueueUrl=run.queue_url, MessageBody=state_change(OTHER, "BUILDING", "AVAILABLE")
            )
            await run.until_stepping(lambda: run.status(OTHER) == "AVAILABLE")
            events_seen = await run.service.store.events()
    assert run.service.engine.watches[OTHER].watched == "events"
    # First seen already AVAILABLE: announced, as any build a source finds in progress
    # or later (the event says it is news).
    assert [(e.image.arn, e.current.status.value) for e in events_seen][-1] == (OTHER, "AVAILABLE")


async def test_a_failing_queue_falls_back_to_polling_and_recovers(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    watch = f'arns = ["{BUILD}"]\n'
    async with running(tmp_path, sqs_endpoint, watch) as run:
        push = run.service.push
        assert push is not None
        await run.until(lambda: push.health.healthy)
        await run.sqs.delete_queue(QueueUrl=run.queue_url)
        await run.until(lambda: not push.health.healthy)
        ready = await (await run.http.get("/readyz")).json()
        metrics = await (await run.http.get("/metrics")).text()
        await make_queue(sqs_endpoint, "ibwatch-events")
        await run.until(lambda: push.health.healthy)
        back = await (await run.http.get("/readyz")).json()
    assert ready["status"] == "ready", "polling stands in: still ready"
    assert ready["push"].startswith("falling back to polling at the status intervals: ")
    assert "ibwatch_push_healthy 0.0" in metrics
    assert back["push"] == "healthy"
    events = [line["event"] for line in run.logs]
    assert events.count("push.unavailable") == 1
    (unavailable,) = [line for line in run.logs if line["event"] == "push.unavailable"]
    assert unavailable["error"] == "NotFound", unavailable
    assert "push.available" in events


CONSUMER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
"""What deploy/iam-policy.json grants the daemon on its queue."""


async def iam_user(endpoint_url: str, name: str, actions: list[str] | str) -> tuple[str, str]:
    """An IAM user of moto's allowed `actions` on every resource: its access key."""
    async with aws_client("iam", endpoint_url, REGION) as iam:
        await iam.create_user(UserName=name)
        await grant(iam, name, actions)
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


async def grant(iam: Any, user: str, actions: list[str] | str) -> None:
    statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    await iam.put_user_policy(
        UserName=user, PolicyName="ibwatch", PolicyDocument=json.dumps(document)
    )


async def test_a_denied_receive_falls_back_to_polling_and_recovers_once_allowed(
    tmp_path: Path, sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy without sqs:ReceiveMessage: SQS answers 403 AccessDenied (moto checks
    IAM policies once told to). The daemon polls on, says why in /readyz and the
    metrics, and takes events again once the permission is granted."""
    consumer = await iam_user(sqs_endpoint, "ibwatch", CONSUMER_ACTIONS[1:])
    admin = await iam_user(sqs_endpoint, "admin", "*")
    # The daemon's credentials (the simulator takes any; moto checks them).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", consumer[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", consumer[1])
    watch = f'arns = ["{BUILD}"]\n'
    async with running(tmp_path, sqs_endpoint, watch) as run:
        push = run.service.push
        assert push is not None
        # Ready first (the queue answered, the API reached), then the policy applies.
        readiness = run.service.readiness
        assert readiness is not None
        await run.until(lambda: push.health.healthy and readiness.ready)
        try:
            enforce_iam(sqs_endpoint, True)
            await run.until(lambda: push.health.reason.startswith("AccessDenied"))
            ready = await (await run.http.get("/readyz")).json()
            metrics = await (await run.http.get("/metrics")).text()
            async with aws_client("iam", sqs_endpoint, REGION, admin) as iam:
                await grant(iam, "ibwatch", CONSUMER_ACTIONS)
            await run.until(lambda: push.health.healthy)
            back = await (await run.http.get("/readyz")).json()
        finally:
            enforce_iam(sqs_endpoint, False)
    assert ready["status"] == "ready", ready
    assert ready["push"].startswith("falling back to polling at the status intervals: ")
    assert "403" in ready["push"] or "not authorized" in ready["push"], ready["push"]
    assert "ibwatch_push_healthy 0.0" in metrics
    assert back["push"] == "healthy"
    (unavailable,) = [line for line in run.logs if line["event"] == "push.unavailable"]
    assert unavailable["error"] == "AccessDenied"
    assert "sqs:ReceiveMessage" in unavailable["message"]
    assert "push.available" in [line["event"] for line in run.logs]


async def dead_letter_queue(sqs_endpoint: str) -> tuple[str, dict[str, str]]:
    """A dead-letter queue, and the attributes that make a queue move a message there
    once it was received more than once without being deleted."""
    url = await make_queue(sqs_endpoint, "ibwatch-events-dlq")
    async with aws_client("sqs", sqs_endpoint, REGION) as sqs:
        found = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": found["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    return url, {"RedrivePolicy": json.dumps(policy)}


async def test_malformed_messages_can_be_kept_for_the_dead_letter_queue(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    dlq, attributes = await dead_letter_queue(sqs_endpoint)
    events = 'malformed = "keep"\nvisibility_timeout = 1\n'
    watch = f'arns = ["{BUILD}"]\n{SLOW}'
    async with running(
        tmp_path, sqs_endpoint, watch, events=events, queue_attributes=attributes
    ) as run:
        await run.until(lambda: run.service.push is not None and run.service.push.health.healthy)
        await run.sqs.send_message(QueueUrl=run.queue_url, MessageBody="<html>not an event")
        with anyio.fail_after(30):  # real seconds: the visibility timeout is real time
            while not (found := await run.sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)).get(
                "Messages"
            ):
                pass
    assert found["Messages"][0]["Body"] == "<html>not an event"
    assert run.counted("malformed") == 1, "counted on its first receive only"
    said = [line for line in run.logs if line["event"] == "push.malformed_message"]
    assert len(said) == 1
    assert said[0]["note"].startswith("kept")


async def test_keeping_malformed_messages_without_a_dead_letter_queue_is_refused(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    watch = f'arns = ["{BUILD}"]\n{SLOW}'
    async with running(tmp_path, sqs_endpoint, watch, events='malformed = "keep"\n') as run:
        await run.until(lambda: run.service.push is not None and run.service.push.health.healthy)
        await run.sqs.send_message(QueueUrl=run.queue_url, MessageBody="not an event")
        await run.until(lambda: "push.deleted" in [line["event"] for line in run.logs])
        assert await run.queued() == 0, "deleted, as without keep"
    assert run.counted("malformed") == 1
    (refused,) = [line for line in run.logs if line["event"] == "push.malformed_not_kept"]
    assert "no redrive policy" in refused["problem"]


async def test_an_event_of_a_build_that_cannot_be_polled_is_counted_and_deleted(
    tmp_path: Path, sqs_endpoint: str
) -> None:
    """NotFound will not heal: the message is not left to come back until the
    dead-letter queue takes it."""
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/gone/9.9.9/1"
    watch = f'arns = ["{BUILD}"]\n{SLOW}'
    events = 'safety_interval = "2h"\nfollow_all = true\n'
    async with running(tmp_path, sqs_endpoint, watch, events=events) as run:
        with run.clock.held():
            await run.until_watching(BUILD)
            await run.sqs.send_message(
                QueueUrl=run.queue_url, MessageBody=state_change(missing, "BUILDING", "FAILED")
            )
            await run.until_stepping(lambda: run.counted("failed") == 1)
            await run.until_stepping(lambda: "push.deleted" in [line["event"] for line in run.logs])
            assert await run.queued() == 0
    assert missing not in run.service.engine.watches
    (failed,) = [line for line in run.logs if line["event"] == "push.poll_failed"]
    assert failed["error"] == "NotFound"
