"""/metrics when the state store cannot answer: the scrape still succeeds, without the
outbox gauges, so that `ibwatch_ready` (and everything else) reaches Prometheus; the
log says so once when it starts and once when it ends. A closed SQLite store fails
at once; PostgreSQL out of reach keeps the store waiting up to 30 s, past Prometheus's
scrape timeout, so the scrape stops waiting after `OUTBOX_READ_WITHIN`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from tests.cli.in_process import daemon_config
from tests.ha.test_partition import partitionable
from tests.support import WEB_BASE
from watcher import server
from watcher.config import load
from watcher.daemon import open_service, probes_of
from watcher.store import PostgresStore, SqliteStore, StateStore
from watcher.testing import FakeClock

OUTBOX = {"ibwatch_outbox_pending", "ibwatch_outbox_oldest_pending_seconds", "ibwatch_dead_letters"}
Client = TestClient[Any, Any]


@asynccontextmanager
async def endpoint(
    tmp_path: Path, clock: FakeClock, store: StateStore
) -> AsyncIterator[tuple[server.Probes, Client]]:
    """The HTTP endpoint of a daemon that never polls (its Image Builder endpoint need
    not answer), reading `store`: the probes it reads (`store` may be swapped) and a
    client of it."""
    config = tmp_path / "watcher.toml"
    config.write_text(
        daemon_config("http://127.0.0.1:9", tmp_path / "state.db", f'arns = ["{WEB_BASE}"]\n')
    )
    async with open_service(load(config), clock=clock) as service:
        probes = dataclasses.replace(probes_of(service), store=store)
        probes.store_open = lambda: getattr(probes.store, "is_open", False)
        async with TestClient(TestServer(server.create_app(probes))) as http:
            yield probes, http


async def scrape(http: Client) -> tuple[int, dict[str, float]]:
    response = await http.get("/metrics")
    text = await response.text()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return response.status, samples


async def test_a_closed_store_leaves_the_outbox_gauges_out_and_the_scrape_whole(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "outbox.db")
    reopened = None
    try:
        async with endpoint(tmp_path, FakeClock(), store) as (probes, http):
            _, healthy = await scrape(http)
            await store.close()
            with capture_logs() as logs:
                closed = [await scrape(http) for _ in range(2)]
                probes.store = reopened = await SqliteStore.open(tmp_path / "outbox.db")
                _, back = await scrape(http)
    finally:
        if reopened is not None:
            await reopened.close()
    assert set(healthy) >= OUTBOX, "the leader's scrape has them while the store answers"
    assert healthy["ibwatch_outbox_readable"] == back["ibwatch_outbox_readable"] == 1
    for status, samples in closed:
        assert status == 200
        assert samples["ibwatch_ready"] == 0, "the store is closed: /readyz says 503"
        assert not OUTBOX & set(samples), "no stale value stands in for the store's"
        assert samples["ibwatch_outbox_readable"] == 0, "what an alert can fire on"
    assert set(back) >= OUTBOX
    assert [line["event"] for line in logs] == [
        "metrics.outbox_unreadable",
        "metrics.outbox_readable",
    ]
    assert "outbox.db" in logs[0]["error"]


async def test_a_database_out_of_reach_holds_the_scrape_back_for_a_bounded_time(
    tmp_path: Path, postgres_url: str
) -> None:
    """The network to PostgreSQL cut: no answer and no error, the store would wait for
    one up to 30 s."""
    clock = FakeClock()
    async with partitionable(postgres_url) as network:
        store = await PostgresStore.open(network.url)
        try:
            async with endpoint(tmp_path, clock, store) as (_, http):
                _, healthy = await scrape(http)
                network.cut = True
                answer: list[tuple[int, dict[str, float]]] = []
                async with anyio.create_task_group() as group:

                    async def scraped() -> None:
                        answer.append(await scrape(http))

                    group.start_soon(scraped)
                    # The deadline runs on the probes' clock: moved until the scrape
                    # answers (a move fires it once the scrape waits on it).
                    with anyio.fail_after(10):
                        while not answer:
                            clock.advance(server.OUTBOX_READ_WITHIN)
                            await anyio.sleep(0.01)
        finally:
            network.shut()
            await store.close()
    assert set(healthy) >= OUTBOX
    [(status, samples)] = answer
    assert status == 200
    assert "ibwatch_ready" in samples
    assert not OUTBOX & set(samples)
    assert samples["ibwatch_outbox_readable"] == 0


class SlowOutbox:
    """A real store whose outbox counts come only when the test says: a slow but
    healthy database (a count over many dead letters)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.asked = anyio.Event()
        self.answer = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_stats(self) -> Any:
        self.asked.set()
        await self.answer.wait()
        return await self._store.outbox_stats()


async def test_a_slow_but_healthy_store_answers_a_scrape_within_half_its_timeout(
    tmp_path: Path,
) -> None:
    """3 s of the probes' clock pass before the counts come: within the wait (5 s,
    half Prometheus's default scrape_timeout), so the gauges are in the scrape."""
    clock = FakeClock()
    store = await SqliteStore.open(tmp_path / "outbox.db")
    slow = SlowOutbox(store)
    answer: list[tuple[int, dict[str, float]]] = []
    try:
        async with (
            endpoint(tmp_path, clock, slow) as (_, http),  # type: ignore[arg-type]
            anyio.create_task_group() as group,
        ):

            async def scraped() -> None:
                answer.append(await scrape(http))

            group.start_soon(scraped)
            with anyio.fail_after(10):
                await slow.asked.wait()
            clock.advance(3.0)
            slow.answer.set()
    finally:
        await store.close()
    [(status, samples)] = answer
    assert status == 200
    assert set(samples) >= OUTBOX
    assert samples["ibwatch_outbox_readable"] == 1
