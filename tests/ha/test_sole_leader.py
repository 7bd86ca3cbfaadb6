"""With the SQLite state file nothing of the leadership shows but `ibwatch_leader 1`:
one daemon, always the leader; its probes read as before, with no `role`."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.in_process import daemon_config
from tests.support import WEB_BASE
from watcher import server
from watcher.config import load
from watcher.daemon import open_service, probes_of
from watcher.testing import FakeClock


async def test_an_sqlite_daemon_is_the_leader_and_its_probes_name_no_role(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    # Never polled: the endpoint is only read, so the URL need not answer.
    config.write_text(
        daemon_config("http://127.0.0.1:9", tmp_path / "state.db", f'arns = ["{WEB_BASE}"]\n')
    )
    async with (
        open_service(load(config), clock=FakeClock()) as service,
        TestClient(TestServer(server.create_app(probes_of(service)))) as http,
    ):
        ready = await (await http.get("/readyz")).json()
        status = await (await http.get("/status")).json()
        text = await (await http.get("/metrics")).text()
    assert service.leadership.role == "leader"
    assert "role" not in ready
    assert "role" not in status
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert (samples["ibwatch_leader"], samples["ibwatch_leader_epoch"]) == (1, 0)
    assert samples["ibwatch_fenced_writes_total"] == 0
