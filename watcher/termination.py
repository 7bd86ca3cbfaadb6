"""SIGTERM in the one-shot commands (`wait-until-available`, `start`): from the moment
the command line has been read, SIGTERM ends the run as SIGINT does, with an exception
that unwinds it from wherever it is, so that the run still hands on its result files
(exit 143) instead of dying with nothing written. A CI runner that cancels a job sends
SIGTERM, maybe while ibwatch is still importing or starting a pipeline.

During the wait itself, and what follows a timeout (`start --cancel-on-timeout`'s wait
for its cancellations), `watcher.wait` takes both signals over (the engine or that
wait stops, and the result so far is reported) and gives the handler back once the
result is known. Only in
the main thread, where Python runs signal handlers; never a handler left behind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM came. A KeyboardInterrupt because Python and asyncio treat one as "unwind
    everything now", as SIGINT needs too: asyncio re-raises it out of its event loop at
    once rather than leave it in a task, and no `except Exception` swallows it."""


@contextmanager
def sigterm_raises(*, unless: Callable[[], bool]) -> Iterator[Callable[[], None]]:
    """Within, the first SIGTERM raises `Terminated` in the main thread, but not while
    `unless()` is true (the result is being written: the run ends with it). Yields
    `disarm`: from then on SIGTERM is ignored, for a run that is ending anyway and must
    not be cut off while it writes its files. Any later SIGTERM is ignored too. On
    exit the handler that was there before is back."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # signal.signal works in the main thread only
        return
    armed = True

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal armed
        if armed and not unless():
            armed = False
            raise Terminated

    def disarm() -> None:
        nonlocal armed
        armed = False

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield disarm
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
