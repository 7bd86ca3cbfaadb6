"""Running `ibwatch` as a real subprocess and reading its output as it comes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

IBWATCH = Path(sys.executable).parent / "ibwatch"


class LineReader:
    """Collects a process's stdout lines; `until()` waits for a condition on them."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._buffer = ""
        self._changed = anyio.Event()

    async def pump(self) -> None:
        assert self.process.stdout is not None
        async for chunk in self.process.stdout:
            self._buffer += chunk.decode()
            *complete, self._buffer = self._buffer.split("\n")
            self.lines += complete
            self._changed.set()
            self._changed = anyio.Event()

    async def until(self, condition: Callable[[list[str]], bool], seconds: float = 30) -> None:
        """Wait for `condition`; past `seconds`, kill the process and fail with what it
        printed: leaving the `open_process` block would otherwise wait for a process
        that never exits, and the test would hang to the bare pytest timeout."""
        try:
            with anyio.fail_after(seconds):
                while not condition(self.lines):
                    await self._changed.wait()
        except TimeoutError:
            if self.process.returncode is None:
                self.process.kill()
            shown = "\n".join(self.lines[-60:])
            raise AssertionError(
                f"condition not met within {seconds} s; the last lines:\n{shown}"
            ) from None

    def json_lines(self) -> list[dict[str, Any]]:
        return self.parse(self.lines)

    @staticmethod
    def parse(lines: list[str]) -> list[dict[str, Any]]:
        return [json.loads(line) for line in lines if line.startswith("{")]
