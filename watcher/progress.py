"""Progress of a one-shot wait on stderr: on a terminal, a live line per image
(status, running workflow step, time in status, total elapsed); in a CI log, one
line per transition, one per new workflow step, and a heartbeat every few minutes so
the log shows the job is alive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from watcher.build_progress import WORKFLOW_OF_STATUS, BuildProgress, progress_text
from watcher.clock import Clock
from watcher.engine import Watch
from watcher.model import Transition
from watcher.summary import duration_text, headline


class Progress:
    def __init__(
        self,
        stream: TextIO,
        clock: Clock,
        watches: Mapping[str, Watch],
        *,
        live: bool,
        heartbeat: float = 300.0,
        redraw: float = 1.0,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._watches = watches
        self._live = live
        self._heartbeat = heartbeat
        self._redraw = redraw
        self._started = clock.monotonic()
        self._drawn = 0

    async def send(self, event: Transition) -> None:
        """The sink side: one line per transition when not drawing live lines."""
        if not self._live:
            self._write(f"[{duration_text(self._elapsed())}] {headline(event)}\n")

    def progressed(self, arn: str, progress: BuildProgress) -> None:
        """The engine's word that a build's running step changed: a line in a CI log
        (a terminal's live line shows it at the next redraw). Between workflows there
        is no step, and no news."""
        watch = self._watches.get(arn)
        if self._live or progress.step is None or watch is None or watch.tracked is None:
            return
        snapshot = watch.tracked.snapshot
        self._write(
            f"[{duration_text(self._elapsed())}] {snapshot.name} {snapshot.version}/"
            f"{snapshot.build} {self._status_text(watch)}\n"
        )

    async def run(self) -> None:
        """Redraw the live lines, or write heartbeats, until cancelled."""
        try:
            while True:
                await self._clock.sleep(self._redraw if self._live else self._heartbeat)
                if self._live:
                    self.draw()
                else:
                    self._write(
                        f"[{duration_text(self._elapsed())}] still waiting: "
                        f"{'; '.join(self._lines())}\n"
                    )
        finally:
            if self._live:
                self.draw()

    def draw(self) -> None:
        lines = self._lines()
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._drawn = len(lines)

    def _lines(self) -> list[str]:
        now = self._clock.now()
        lines = []
        for watch in self._watches.values():
            name = watch.arn.split(":image/", 1)[-1]
            if watch.error is not None:
                lines.append(f"{name}  error: {watch.error.code or type(watch.error).__name__}")
            elif watch.tracked is None:
                lines.append(f"{name}  {watch.waiting or 'waiting for the first answer'}")
            else:
                snapshot = watch.tracked.snapshot
                total = (now - snapshot.created).total_seconds() if snapshot.created else None
                lines.append(
                    f"{snapshot.name} {snapshot.version}/{snapshot.build}  "
                    f"{self._status_text(watch)} in status, {duration_text(total)} total"
                )
        return lines

    def _status_text(self, watch: Watch) -> str:
        """`TESTING · test workflow, step 2/4 RunTests (RunCommand) · 4m12s`, or
        `BUILDING  ≥4m12s` while no step is known: the status, its running step, and
        how long the build has been in that status."""
        assert watch.tracked is not None
        status = watch.tracked.snapshot.status
        in_status = (self._clock.now() - watch.tracked.status_since).total_seconds()
        # On first sight the build was already in this status for an unknown
        # while: the time counted from then is only a lower bound.
        at_least = "≥" if watch.tracked.sequence == 1 else ""
        since = f"{at_least}{duration_text(in_status)}"
        # Only a step of this status's workflow: a step looked up in the previous
        # status is not shown under the new one.
        if watch.progress is not None and watch.progress.workflow == WORKFLOW_OF_STATUS.get(status):
            return f"{status} · {progress_text(watch.progress)} · {since}"
        return f"{status}  {since}"

    def _elapsed(self) -> float:
        return self._clock.monotonic() - self._started

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
