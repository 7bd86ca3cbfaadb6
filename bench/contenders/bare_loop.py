"""The baseline for overhead: a bare aiobotocore loop making the same calls with
the same concurrency, and nothing else."""

from __future__ import annotations

import asyncio
import itertools
import time

from aiobotocore.session import get_session

from bench.contenders.common import Job, Result, Stopwatch, client_kwargs


async def main(job: Job) -> None:
    result = Result()
    arns = itertools.cycle(job.arns)
    assert job.calls is not None
    async with get_session().create_client("imagebuilder", **client_kwargs(job)) as client:
        await client.get_image(imageBuildVersionArn=job.arns[0])  # warm the pool

        async def worker() -> None:
            while result.ok < job.calls:  # type: ignore[operator]
                try:
                    await client.get_image(imageBuildVersionArn=next(arns))
                    result.ok += 1
                    if result.ok == len(job.arns):  # the first pass is over
                        result.steady_from = (time.process_time(), result.ok)
                except Exception:
                    result.errors += 1

        with Stopwatch() as watch:
            await asyncio.gather(*(worker() for _ in range(job.concurrency)))
    result.cpu_seconds, result.wall_seconds = watch.cpu, watch.wall
    result.finish_steady(time.process_time())
    result.report()


if __name__ == "__main__":
    asyncio.run(main(Job.from_argv()))
