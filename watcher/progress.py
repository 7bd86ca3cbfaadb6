"""Progress of a one-shot wait on stderr: on a terminal, a live line per image
(status, time in status, total elapsed); in a CI log, one line per transition and
a heartbeat every few minutes so the log shows the job is alive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

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
                in_status = (now - watch.tracked.status_since).total_seconds()
                total = (now - snapshot.created).total_seconds() if snapshot.created else None
                # On first sight the build was already in this status for an unknown
                # while: the time counted from then is only a lower bound.
                at_least = "≥" if watch.tracked.sequence == 1 else ""
                lines.append(
                    f"{snapshot.name} {snapshot.version}/{snapshot.build}  "
                    f"{snapshot.status}  {at_least}{duration_text(in_status)} in status, "
                    f"{duration_text(total)} total"
                )
        return lines

    def _elapsed(self) -> float:
        return self._clock.monotonic() - self._started

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
