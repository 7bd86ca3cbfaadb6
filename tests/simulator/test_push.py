"""The simulator pushes: every status change becomes an EventBridge event in a real
SQS queue (moto's server on loopback, tests/sqs_support.py), on virtual time, and
`[events]` loses, duplicates and reorders a seeded share of them.

moto keeps a standard queue's messages in the order they were sent, which real SQS
does not promise; that is what lets these tests check the order the simulator sends in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from tests.simulator.helpers import FAILING, QUICK, in_main_thread, nightly, world
from tests.sqs_support import REGION, make_queue, reset
from tests.support import (
    WEB_BASE,
    WEB_BASE_VERSION,
    aws_client,
    imagebuilder,
    timeline,
    web_base_image,
)
from watcher.cli import main
from watcher.push_messages import parse_message
from watcher.simulator import Scenario, ScenarioError, Simulator, Step, load_scenario
from watcher.simulator.push import PushCounters, check_queue_url, sqs_endpoint, sqs_region
from watcher.testing import VirtualClock

REFERENCE = Path(__file__).parents[2] / "config" / "scenario-reference.toml"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""VirtualClock's wall time at 0: scenario time 0, with time_scale 1."""
API = "arn:aws:imagebuilder:us-east-1:123456789012:image/api-runtime/2.0.3/1"
B8, B9 = f"{WEB_BASE_VERSION}/8", f"{WEB_BASE_VERSION}/9"

# web-base 1.4.0/7 from 0s; api-runtime from 30s, failing; the nightly pipeline
# (QUICK: 60s PENDING, 240s BUILDING, AVAILABLE) runs at 300s and 900s.
PLAN = world(
    images=[
        web_base_image(),
        {
            "arn": API,
            "type": "DOCKER",
            "start": 30,
            "timeline": [
                {"status": "BUILDING", "duration": 200},
                {"status": "FAILED", "reason": "Component api-smoke-test failed"},
            ],
        },
    ],
    pipelines=[nightly(schedule={"every": "10m", "first": "5m", "until": "15m"})],
)
PLAN_CHANGES = [
    (0, WEB_BASE, "PENDING"),
    (30, API, "BUILDING"),
    (60, WEB_BASE, "CREATING"),
    (120, WEB_BASE, "BUILDING"),
    (230, API, "FAILED"),
    (300, B8, "PENDING"),
    (360, B8, "BUILDING"),
    (600, B8, "AVAILABLE"),
    (720, WEB_BASE, "TESTING"),
    (900, B9, "PENDING"),
    (960, B9, "BUILDING"),
    (1020, WEB_BASE, "DISTRIBUTING"),
    (1140, WEB_BASE, "INTEGRATING"),
    (1170, WEB_BASE, "AVAILABLE"),
    (1200, B9, "AVAILABLE"),
]


def many(count: int = 25, **fields: Any) -> Scenario:
    """`count` builds of web-base 1.4.0, one every minute, four statuses each."""
    steps = timeline(("PENDING", 60), ("BUILDING", 240), ("TESTING", 120), ("AVAILABLE", None))
    images = [
        web_base_image(arn=f"{WEB_BASE_VERSION}/{n}", start=60 * n, timeline=steps)
        for n in range(1, count + 1)
    ]
    return world(images=images, pipelines=[], **fields)


@pytest.fixture
async def queue(moto: str, request: pytest.FixtureRequest) -> str:
    return await make_queue(moto, request.node.name.replace("[", "-").replace("]", "")[:80])


async def drain(endpoint_url: str, queue_url: str) -> list[str]:
    """Every message body in the queue, in the order SQS hands them out; deleted."""
    bodies: list[str] = []
    async with aws_client("sqs", endpoint_url, REGION) as sqs:
        while True:
            received = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            messages = received.get("Messages") or []
            if not messages:
                return bodies
            bodies.extend(message["Body"] for message in messages)
            entries = [
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(messages)
            ]
            deleted = await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            assert not deleted.get("Failed"), deleted


During = Callable[[Simulator, VirtualClock], Awaitable[None]]


async def play(
    plan: Scenario, queue_url: str, during: During | None = None
) -> tuple[Simulator, list[str]]:
    """Serve `plan` on virtual time until it settles (and `during` has run), pushing
    to `queue_url`; the simulator and the bodies the queue then holds."""
    clock = VirtualClock()
    simulator = Simulator(plan, clock=clock, events_queue=queue_url)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        # The clock's thread pool in place before any client needs one.
        await anyio.lowlevel.checkpoint()
        with anyio.fail_after(40):
            async with simulator:
                if during is not None:
                    await during(simulator, clock)
                await clock.sleep(simulator.settled_at() - clock.monotonic() + 1)
            # Read while the clock still drives: it owns the loop's thread pool.
            bodies = await drain(queue_url.rsplit("/", 2)[0], queue_url)
        group.cancel_scope.cancel()
    return simulator, bodies


def changes(bodies: list[str]) -> list[tuple[str, str | None]]:
    """(build ARN, status) of each body, as the watcher's reader reads it."""
    read = [parse_message(body) for body in bodies]
    assert all(event is not None and event.kind == "eventbridge" for event in read)
    return [(event.build_arn, event.status) for event in read if event is not None]


def ids(bodies: list[str]) -> list[str]:
    return [json.loads(body)["id"] for body in bodies]


def conserved(counters: PushCounters, in_queue: int) -> None:
    """The counters account for every message the queue holds."""
    assert counters.held == 0
    assert counters.failed == 0
    assert counters.sent == in_queue
    assert counters.sent == counters.changes - counters.dropped + counters.duplicated


# -- every change, once, in order ---------------------------------------------


Played = tuple[PushCounters, list[str]]


@pytest.fixture(scope="module")
def plan_played(_moto_server: str) -> Played:
    """PLAN played once through a queue of its own: the tests that only read its
    messages share one play."""
    reset(_moto_server)

    async def run() -> Played:
        queue = await make_queue(_moto_server, "plan")
        simulator, bodies = await play(PLAN, queue)
        return simulator.push_counters, bodies

    return anyio.run(run)


def test_every_status_change_arrives_once_in_order(plan_played: Played) -> None:
    counters, bodies = plan_played
    assert changes(bodies) == [(arn, status) for _, arn, status in PLAN_CHANGES]
    assert len(set(ids(bodies))) == len(bodies)
    conserved(counters, len(bodies))
    assert counters.changes == len(PLAN_CHANGES)


def test_each_event_is_timed_at_the_scenario_time_of_its_change(plan_played: Played) -> None:
    _, bodies = plan_played
    times = [parse_message(body).time for body in bodies]  # type: ignore[union-attr]
    assert times == [EPOCH + timedelta(seconds=at) for at, _, _ in PLAN_CHANGES]
    assert json.loads(bodies[-1])["time"] == "2026-01-01T00:20:00Z"


def test_events_have_the_documented_envelope_and_detail(plan_played: Played) -> None:
    _, bodies = plan_played
    documents = [json.loads(body) for body in bodies]
    failed = documents[4]
    assert failed == {
        "version": "0",
        "id": failed["id"],
        "detail-type": "EC2 Image Builder Image State Change",
        "source": "aws.imagebuilder",
        "account": "123456789012",
        "time": "2026-01-01T00:03:50Z",
        "region": "us-east-1",
        "resources": [API],
        "detail": {
            "previous-state": {"status": "BUILDING"},
            "state": {"status": "FAILED", "reason": "Component api-smoke-test failed"},
        },
    }
    # The first status of a build has no previous state (our reading).
    assert documents[0]["detail"] == {"state": {"status": "PENDING"}}
    assert all(isinstance(d["id"], str) and len(d["id"]) == 36 for d in documents)


def test_previous_state_is_the_status_before_of_the_same_build(plan_played: Played) -> None:
    _, bodies = plan_played
    last: dict[str, str] = {}
    for document in map(json.loads, bodies):
        arn = document["resources"][0]
        previous = document["detail"].get("previous-state", {}).get("status")
        assert previous == last.get(arn)
        last[arn] = document["detail"]["state"]["status"]


async def test_builds_started_and_cancelled_in_process_are_pushed(queue: str) -> None:
    started: list[str] = []

    async def during(simulator: Simulator, clock: VirtualClock) -> None:
        await clock.sleep(100)
        started.append(simulator.start_build(WEB_BASE, [Step.model_validate(s) for s in QUICK]))
        await clock.sleep(70)  # the new build is BUILDING since 160s
        simulator.cancel_build(started[0])

    plan = world(images=[web_base_image(timeline=FAILING)], pipelines=[])
    simulator, bodies = await play(plan, queue, during)
    assert changes(bodies) == [
        (WEB_BASE, "PENDING"),
        (WEB_BASE, "BUILDING"),
        (started[0], "PENDING"),
        (WEB_BASE, "FAILED"),
        (started[0], "BUILDING"),
        (started[0], "CANCELLED"),
    ]
    conserved(simulator.push_counters, len(bodies))


async def test_a_step_repeating_its_status_is_no_change(queue: str) -> None:
    steps = timeline(("BUILDING", 60), ("BUILDING", 60), ("AVAILABLE", None))
    simulator, bodies = await play(
        world(images=[web_base_image(timeline=steps)], pipelines=[]), queue
    )
    assert changes(bodies) == [(WEB_BASE, "BUILDING"), (WEB_BASE, "AVAILABLE")]
    assert simulator.push_counters.changes == 2


# -- loss, duplicates, reorder ---------------------------------------------------


async def test_loss_drops_the_seeded_share_and_the_counters_agree(queue: str) -> None:
    plan = many(BUILDS, events={"loss": 0.3}, seed=7)
    simulator, bodies = await play(plan, queue)
    counters = simulator.push_counters
    assert (counters.changes, counters.dropped, counters.sent) == (
        CHANGES,
        LOST,
        CHANGES - LOST,
    )
    conserved(counters, len(bodies))
    assert len(set(ids(bodies))) == len(bodies)
    arrived = Counter(changes(bodies))
    every = Counter((f"{WEB_BASE_VERSION}/{n}", s) for n in range(1, BUILDS + 1) for s in STATUSES)
    assert sum((every - arrived).values()) == counters.dropped
    assert not arrived - every


BUILDS = 12
CHANGES = 4 * BUILDS
"""Changes of `many(BUILDS)`: few enough to push quickly, enough for a share to show."""
LOST = 18
"""What seed 7 loses of those 48 changes at loss = 0.3."""
STATUSES = ("PENDING", "BUILDING", "TESTING", "AVAILABLE")


async def test_duplicates_arrive_twice_back_to_back_with_the_same_id(queue: str) -> None:
    simulator, bodies = await play(many(BUILDS, events={"duplicates": 0.2}, seed=7), queue)
    counters = simulator.push_counters
    assert (counters.changes, counters.duplicated) == (CHANGES, DUPLICATED)
    conserved(counters, len(bodies))
    seen = ids(bodies)
    twice = [i for i, n in Counter(seen).items() if n == 2]
    assert len(twice) == counters.duplicated
    assert max(Counter(seen).values()) == 2
    assert all(seen[seen.index(i) + 1] == i for i in twice)
    assert [b for n, b in enumerate(bodies) if n == 0 or bodies[n - 1] != b] == list(
        dict.fromkeys(bodies)
    )


DUPLICATED = 12
"""What seed 7 sends twice of 48 changes at duplicates = 0.2."""


@pytest.mark.timeout(120)
async def test_reorder_sends_a_held_message_after_the_next_one(queue: str) -> None:
    plan = many(BUILDS, events={"reorder": 0.2}, seed=7)
    # Queues made before any play: a VirtualClock shuts the loop's thread pool down.
    in_order_queue = await make_queue(queue.rsplit("/", 2)[0], "in-order")
    simulator, bodies = await play(plan, queue)
    _, in_order = await play(many(BUILDS, seed=7), in_order_queue)
    counters = simulator.push_counters
    assert (counters.changes, counters.reordered) == (CHANGES, REORDERED)
    conserved(counters, len(bodies))
    # The same messages, ids included, in another order.
    assert sorted(bodies) == sorted(in_order)
    rank = {body: n for n, body in enumerate(in_order)}
    positions = [rank[body] for body in bodies]
    passed = [n for n in range(1, len(positions)) if positions[n] < positions[n - 1]]
    assert len(passed) == counters.reordered
    assert all(positions[n] == positions[n - 1] - 1 for n in passed)


REORDERED = 9
"""What seed 7 holds back of 48 changes at reorder = 0.2."""


@pytest.mark.timeout(120)
async def test_the_same_seed_gives_the_same_messages(moto: str) -> None:
    plan = many(10, events={"loss": 0.2, "duplicates": 0.2, "reorder": 0.2}, seed=11)
    queues = [await make_queue(moto, f"seeded-{n}") for n in range(3)]
    _, first = await play(plan, queues[0])
    _, again = await play(plan, queues[1])
    assert first == again
    _, reseeded = await play(plan.model_copy(update={"seed": 12}), queues[2])
    assert set(ids(reseeded)).isdisjoint(ids(first))


# -- sending -------------------------------------------------------------------------


async def test_changes_due_together_go_out_in_batches_of_ten_in_order(queue: str) -> None:
    """25 builds changing at the same moments: three SendMessageBatch calls each time,
    not 25 SendMessage, and each accepted message noted with its change's time. How
    late they reach the queue in real seconds is bench section 7's to measure: here
    the clock is virtual."""
    steps = timeline(("BUILDING", 60), ("AVAILABLE", None))
    arns = sorted(f"{WEB_BASE_VERSION}/{n}" for n in range(1, 26))  # the order sent in
    images = [web_base_image(arn=arn, timeline=steps) for arn in arns]
    simulator, bodies = await play(world(images=images, pipelines=[]), queue)
    counters = simulator.push_counters
    assert changes(bodies) == [(a, "BUILDING") for a in arns] + [(a, "AVAILABLE") for a in arns]
    assert counters.requests == 6, "10, 10 and 5 messages at 0 s, and again at 60 s"
    conserved(counters, len(bodies))
    assert [at for at, _ in counters.late] == [0.0] * 25 + [60.0] * 25
    assert all(delay >= 0 for _, delay in counters.late), counters.late


# -- a queue that fails ------------------------------------------------------------


async def test_a_queue_that_does_not_exist_is_logged_once_and_serving_goes_on(
    moto: str,
) -> None:
    missing = f"{moto}/123456789012/no-such-queue"
    clock = VirtualClock()
    simulator = Simulator(PLAN, clock=clock, events_queue=missing)
    with capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            with anyio.fail_after(30):
                async with simulator as url, imagebuilder(url) as client:
                    await clock.sleep(simulator.settled_at() + 1)
                    image = (await client.get_image(imageBuildVersionArn=WEB_BASE))["image"]
            group.cancel_scope.cancel()
    assert image["state"]["status"] == "AVAILABLE"
    assert simulator.push_counters.failed == len(PLAN_CHANGES)
    assert simulator.push_counters.sent == 0
    warnings = [e for e in logs if e["event"] == "simulator.events_send_failed"]
    assert len(warnings) == 1
    assert "does not exist" in warnings[0]["problem"]


# -- where messages go ----------------------------------------------------------------


def test_the_endpoint_is_the_queue_urls_host() -> None:
    assert sqs_endpoint("http://127.0.0.1:4566/000000000000/events", {}) == "http://127.0.0.1:4566"
    assert (
        sqs_endpoint("https://sqs.eu-west-1.amazonaws.com/123456789012/events", {})
        == "https://sqs.eu-west-1.amazonaws.com"
    )


def test_aws_endpoint_url_sqs_wins_over_the_queue_urls_host() -> None:
    environ = {"AWS_ENDPOINT_URL_SQS": "http://localhost:9324"}
    assert (
        sqs_endpoint("https://sqs.us-east-1.amazonaws.com/1/q", environ) == "http://localhost:9324"
    )


@pytest.mark.parametrize(
    ("queue_url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/123456789012/q", "ap-southeast-2"),
        ("https://queue.amazonaws.com/123456789012/q", "us-east-1"),
        ("https://vpce-0a1b-c2d3.sqs.us-west-2.vpce.amazonaws.com/123456789012/q", "us-west-2"),
        ("http://127.0.0.1:4566/000000000000/q", None),
        ("http://localhost:9324/queue/q", None),
    ],
)
def test_the_region_comes_from_an_aws_queue_urls_host(queue_url: str, region: str | None) -> None:
    assert sqs_region(queue_url) == region


@pytest.mark.parametrize(
    "text", ["", "events", "ftp://host/1/q", "http://127.0.0.1:4566", "http:///q"]
)
def test_a_queue_url_must_be_one(text: str) -> None:
    with pytest.raises(ValueError, match="expected an SQS queue URL like"):
        check_queue_url(text)
    with pytest.raises(ValueError, match="expected an SQS queue URL like"):
        Simulator(PLAN, events_queue=text)


def test_simulate_refuses_a_bad_queue_url_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--scenario", str(REFERENCE), "--events-queue", "events"])
    assert exited.value.code == 2
    assert "--events-queue: expected an SQS queue URL like" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_simulate_pushes_each_change_to_the_queue(
    moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ibwatch simulate --events-queue` as a person runs it, against moto on loopback:
    the CLI's `main` in this test's thread (`helpers.in_main_thread`)."""
    queue = anyio.run(make_queue, moto, "simulate-pushes")
    scenario = tmp_path / "quick.toml"
    scenario.write_text(
        f'time_scale = 600\n[[images]]\narn = "{WEB_BASE}"\ntimeline = [\n'
        '  { status = "PENDING", duration = 60 },\n'
        '  { status = "BUILDING", duration = 120 },\n'
        '  { status = "AVAILABLE" },\n]\n'
    )
    command = ["simulate", "--scenario", str(scenario), "--until-settled"]
    returncode, lines = in_main_thread(capsys, *command, "--events-queue", queue)
    output = "\n".join(lines)
    assert returncode == 0
    assert f"pushing an EventBridge event per status change to {queue}" in output
    bodies = anyio.run(drain, moto, queue)
    assert changes(bodies) == [
        (WEB_BASE, "PENDING"),
        (WEB_BASE, "BUILDING"),
        (WEB_BASE, "AVAILABLE"),
    ]


# -- the [events] keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ({"loss": 1.5}, "events.loss: "),
        ({"duplicates": -0.1}, "events.duplicates: "),
        ({"reorder": "often"}, "events.reorder: "),
        ({"los": 0.1}, "events.los: unknown key (did you mean 'loss'?)"),
    ],
)
def test_events_keys_are_validated_with_their_path(
    tmp_path: Path, events: dict[str, Any], problem: str
) -> None:
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in events.items())
    path = tmp_path / "bad.toml"
    path.write_text(f"[events]\n{lines}\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert problem in str(raised.value)


def test_the_reference_scenario_documents_every_events_key() -> None:
    reference = load_scenario(REFERENCE)
    assert set(reference.events.model_fields_set) == set(type(reference.events).model_fields)


def test_events_default_to_none_going_astray() -> None:
    events = Scenario().events
    assert (events.loss, events.duplicates, events.reorder) == (0.0, 0.0, 0.0)
