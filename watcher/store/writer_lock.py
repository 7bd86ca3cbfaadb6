"""One writer per state file: an exclusive lock on `<state file>.lock`, held while
a daemon runs, so a second `ibwatch run` on the same file stops at once instead of
posting every transition twice.

The lock is the kernel's (flock): it ends with the process, however it ends, so a
SIGKILLed daemon never leaves a stale lock behind. The holder writes its pid into
the file, so the refusal can name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class LockHeld(Exception):
    """Another process holds the state file; the message names it and the holder."""


class WriterLock:
    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise LockHeld(
                f"is in use by another ibwatch{who}: one daemon per state file; stop it, "
                "or give this one its own [state] path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
