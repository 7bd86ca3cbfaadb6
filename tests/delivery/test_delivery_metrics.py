"""`ibwatch_deliveries_total` has each sink's series at 0 before its first delivery,
for the sinks a dispatcher starts with and those a reload adds: Prometheus's
increase() counts nothing for a series' first sample, so a series born at 1 would
never count its first delivery."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from watcher.delivery import Dispatcher, Route
from watcher.metrics import DELIVERY_OUTCOMES, Metrics
from watcher.store import SqliteStore
from watcher.testing import FakeClock, RecordingSink


def deliveries(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["sink"], sample.labels["outcome"]): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "ibwatch_deliveries_total"
    }


def route(name: str) -> Route:
    return Route(name, RecordingSink(), lambda _event: True)


async def test_each_sink_has_its_delivery_series_at_0_from_the_start(tmp_path: Path) -> None:
    metrics = Metrics()
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        dispatcher = Dispatcher(
            store=store, routes=[route("log")], clock=FakeClock(), metrics=metrics
        )
        started = deliveries(metrics.registry)
        dispatcher.set_routes([route("log"), route("hook")])
        reloaded = deliveries(metrics.registry)
    finally:
        await store.close()
    assert started == {("log", outcome): 0 for outcome in DELIVERY_OUTCOMES}
    assert reloaded == {
        (sink, outcome): 0 for sink in ("log", "hook") for outcome in DELIVERY_OUTCOMES
    }
