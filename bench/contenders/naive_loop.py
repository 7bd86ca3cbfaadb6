"""The hand-written loop users have today: for each ARN, `while get-image; sleep T`,
with no backoff and no shared pace (botocore's retries off, as a shell loop around
`aws imagebuilder get-image` would retry nothing either)."""

from __future__ import annotations

import asyncio
import time

from aiobotocore.session import get_session

from bench.contenders.common import Job, Result, Stopwatch, client_kwargs


async def main(job: Job) -> None:
    result = Result()
    assert job.duration is not None
    async with get_session().create_client("imagebuilder", **client_kwargs(job)) as client:

        async def watch_one(arn: str) -> None:
            while True:
                try:
                    image = (await client.get_image(imageBuildVersionArn=arn))["image"]
                    result.ok += 1
                    if image["state"]["status"] == "AVAILABLE":
                        result.observed.setdefault(arn, time.monotonic())
                        return
                except Exception:
                    result.errors += 1
                await asyncio.sleep(job.interval)

        with Stopwatch() as watch:
            tasks = [asyncio.create_task(watch_one(arn)) for arn in job.arns]
            await asyncio.wait(tasks, timeout=job.duration)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    result.cpu_seconds, result.wall_seconds = watch.cpu, watch.wall
    result.report()


if __name__ == "__main__":
    asyncio.run(main(Job.from_argv()))
