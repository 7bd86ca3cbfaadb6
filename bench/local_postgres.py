"""A throwaway PostgreSQL server for the benchmarks: the `pgserver` wheel's
PostgreSQL 16 (as the tests use, tests/pg_support.py), but with the server's own
durable defaults (fsync, synchronous_commit on, full_page_writes), since the figures
are to be what a user's server costs; listening on 127.0.0.1 and on a Unix socket.

Every connection is trusted (pgserver's initdb: --auth=trust): no password, and
nothing listens beyond loopback. The server is stopped when the context ends, and
its data directory removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.proc_cpu import tree_cpu

Via = Literal["tcp", "socket"]


@dataclass
class LocalPostgres:
    pgdata: Path
    port: int
    socket_dir: Path
    postmaster_pid: int
    _handle: Any

    def url(self, database: str, *, via: Via = "tcp") -> str:
        """A URL `[state] url` takes: TCP to 127.0.0.1, or the Unix socket."""
        if via == "tcp":
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str, **settings: str) -> None:
        """A new empty database; `settings` become its defaults (ALTER DATABASE SET)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            for key, value in settings.items():
                admin.execute(f'ALTER DATABASE "{name}" SET {key} = {value}')

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cpu_seconds(self) -> float:
        """CPU the server has used so far: the postmaster, its helpers (checkpointer,
        WAL writer, autovacuum) and every session, ended ones included."""
        return tree_cpu(self.postmaster_pid)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.pgdata, user=self._handle.system_user, timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    """Start a server (initdb takes a few seconds); stop and remove it after."""
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.utils import PostmasterInfo

    # Not under a directory only root may enter: run as root, the server runs as
    # pgserver's own user (pgserver fixes the permissions of the path it is given).
    home = Path(tempfile.mkdtemp(prefix="ibwatch-bench-pg-"))
    server: LocalPostgres | None = None
    try:
        # pgserver's initdb, and its start on a socket only; restarted below to
        # listen on 127.0.0.1 as well. cleanup_mode None: stopping is ours.
        handle = pgserver.get_server(home / "data", cleanup_mode=None)  # type: ignore[attr-defined]
        info = handle.get_postmaster_info()
        server = LocalPostgres(handle.pgdata, _free_port(), info.socket_dir, info.pid, handle)
        server._pg_ctl("-w", "-m", "fast", "stop")
        options = f"-h 127.0.0.1 -p {server.port} -k {server.socket_dir}"
        server._pg_ctl("-w", "-o", options, "-l", str(handle.log), "start")
        restarted = PostmasterInfo.read_from_pgdata(handle.pgdata)
        assert restarted is not None
        server.postmaster_pid = restarted.pid
        handle._postmaster_info = restarted
        yield server
    finally:
        if server is not None:
            try:
                server._pg_ctl("-w", "-m", "fast", "stop")
            except Exception as exc:  # the server must not outlive the bench
                print(f"bench: pg_ctl stop failed ({exc}); ending it", file=sys.stderr)
                with contextlib.suppress(OSError):
                    os.kill(server.postmaster_pid, signal.SIGQUIT)
        shutil.rmtree(home, ignore_errors=True)
