"""`World`: everything a request handler reads and changes, and the one place
scenario time is computed from the clock.

Asking for the time (`now`) also materialises every scheduled pipeline run due
by then, so no handler can see the account as it was before a run started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from watcher.clock import Clock
from watcher.simulator.account import Account
from watcher.simulator.documents import Renderer
from watcher.simulator.faults import Counters, Decision, FaultPlan
from watcher.simulator.paging import Pager


@dataclass
class World:
    """The account, how to render and page it, the faults, the counters, the time."""

    account: Account
    renderer: Renderer
    pager: Pager
    plan: FaultPlan
    counters: Counters
    clock: Clock
    started: float
    time_scale: float

    def scenario_time(self) -> float:
        return (self.clock.monotonic() - self.started) * self.time_scale

    def now(self) -> float:
        """Scenario time now, with the account brought up to it."""
        t = self.scenario_time()
        self.account.advance(t)
        return t


Handler = Callable[[web.Request, World, Decision], Awaitable[web.Response]]
"""Answers one operation's request; raises ApiError for an error answer."""
