"""What users write by hand today to find new builds of their pipelines: every
interval, list every pipeline's images (every page, botocore's paginator), and
GetImage each build not seen before to learn its status. The first pass only
learns what already exists, as such a script must (or it would announce history).

Plain aiobotocore, one pipeline after another, botocore's retries off (as the
other contenders); it sleeps the rest of each interval, so its passes do not
drift. Reports when each pass started and ended (and the CPU time used by then)
and, per new build, when GetImage answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiobotocore.session import get_session

from bench.contenders.common import Job, Result, Stopwatch, client_kwargs


async def main(job: Job) -> None:
    result = Result()
    first_event: dict[str, float] = {}
    starts: list[float] = []
    passes: list[float] = []
    cpu: list[float] = []
    known: set[str] = set()
    async with get_session().create_client("imagebuilder", **client_kwargs(job)) as client:
        paginator = client.get_paginator("list_image_pipeline_images")

        async def one_pass(learn_only: bool) -> None:
            for pipeline in job.arns:
                try:
                    async for page in paginator.paginate(imagePipelineArn=pipeline):
                        result.ok += 1
                        for summary in page.get("imageSummaryList", []):
                            build = summary["arn"]
                            if build in known:
                                continue
                            if not learn_only:
                                await client.get_image(imageBuildVersionArn=build)
                                result.ok += 1
                                first_event.setdefault(build, time.monotonic())
                            known.add(build)
                except Exception:
                    result.errors += 1  # the next pass lists this pipeline again

        async def loop() -> None:
            while job.passes is None or len(passes) < job.passes:
                started = time.monotonic()
                starts.append(started)
                await one_pass(learn_only=not passes)
                passes.append(time.monotonic())
                cpu.append(time.process_time())
                if job.passes is not None and len(passes) >= job.passes:
                    return
                await asyncio.sleep(max(0.0, job.interval - (time.monotonic() - started)))

        began = time.monotonic()
        # A TimeoutError just means the duration is over.
        with Stopwatch() as watch, contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop(), timeout=job.duration)
    result.cpu_seconds, result.wall_seconds = watch.cpu, watch.wall
    result.report(
        began=began, pass_starts=starts, passes=passes, pass_cpu=cpu, first_event=first_event
    )


if __name__ == "__main__":
    asyncio.run(main(Job.from_argv()))
