"""`VirtualClock.drive` moves time only when nothing is under way: not while a worker
thread's result is still on its way to the task awaiting it (aiobotocore awaits its TLS
context so), and not before a task that result wakes has run."""

from __future__ import annotations

import asyncio
import threading

import anyio
import anyio.lowlevel

from watcher.testing import VirtualClock, _CountingExecutor


async def test_a_thread_job_counts_as_running_until_its_result_is_on_its_way_to_the_loop() -> None:
    """A callback on the job's future stands where asyncio's hand-over of the result
    runs: in the worker thread, once the job is done. The count must not drop while
    that is still to run, however long the thread waits for the GIL or a CPU. Here the
    thread waits until the loop has run what was posted before it, and more: a release
    posted ahead of the hand-over (as it once was) would have run by then."""
    loop = asyncio.get_running_loop()
    executor = _CountingExecutor()
    loop_ran_what_was_posted = threading.Event()
    running_at_hand_over: list[int] = []

    def hand_over(_: object) -> None:
        loop.call_soon_threadsafe(loop.call_soon, loop.call_soon, loop_ran_what_was_posted.set)
        loop_ran_what_was_posted.wait()
        running_at_hand_over.append(executor.running)

    go = threading.Event()  # the job ends only once the callback is in place
    job = executor.submit(lambda: go.wait() and 42)
    job.add_done_callback(hand_over)
    go.set()
    try:
        assert await asyncio.wrap_future(job) == 42
        assert running_at_hand_over == [1]
        while executor.running:  # released once handed over
            await anyio.lowlevel.checkpoint()
    finally:
        executor.shutdown(wait=True)


IDLE_ROUNDS = 30
BUSY_EVERY = IDLE_ROUNDS - 1


async def test_time_moves_only_after_idle_rounds_in_a_row_with_nothing_under_way() -> None:
    """A task busy for one turn in every `idle_rounds - 1` keeps time still: the loop is
    never idle for `idle_rounds` turns in a row. Checked once per `idle_rounds` turns,
    busyness was missed whenever the check fell between two busy turns (time then moved
    past work a finished thread job had just woken)."""
    clock = VirtualClock(idle_rounds=IDLE_ROUNDS)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        group.start_soon(clock.sleep, 10.0)  # a deadline for time to jump to
        for _ in range(200):
            with clock.held():
                await anyio.lowlevel.checkpoint()
            for _ in range(BUSY_EVERY - 1):
                await anyio.lowlevel.checkpoint()
            assert clock.monotonic() == 0.0
        while clock.monotonic() < 10.0:  # idle now: time moves to the sleeper's deadline
            await anyio.lowlevel.checkpoint()
        assert clock.monotonic() == 10.0
        group.cancel_scope.cancel()
