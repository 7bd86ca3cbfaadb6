"""A real PostgreSQL for the tests of `[state] url`: the server that the `pgserver` wheel
ships (PostgreSQL 16, listening on a Unix socket only, so nothing beyond this machine),
or the one IBWATCH_TEST_POSTGRES_URL names (its role must be allowed CREATE DATABASE).

One server per test process (session scope: it starts in about two seconds); each test
gets a database of its own, created for it and dropped after it, so tests never see
each other's rows nor each other's advisory locks (PostgreSQL scopes those to a
database). The URLs carry a password shaped like the suite's secrets
(tests/secret_guard.py), so a URL printed unredacted anywhere fails the test.

Fixtures (registered by tests/conftest.py):
- `postgres_url`: the URL of a fresh, empty database, as `[state] url` takes it.
- `dml_only_role`: a `DmlOnlyRole` (its `url`, `grant()`): a role of its own on the
  `postgres_url` database that may read and write rows and nothing more, as a
  least-privilege deployment runs the daemon.
- `restartable_postgres`: a `RestartablePostgres` (its `url`, `stop()`, `start()`):
  a fresh database on a server this process owns, which the test may stop and start
  again under a running store or daemon. Always a pgserver one, even when
  IBWATCH_TEST_POSTGRES_URL is set: a shared server is not ours to stop.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

ENVIRONMENT_VARIABLE = "IBWATCH_TEST_POSTGRES_URL"

# The role the tests' databases belong to. pgserver's cluster trusts every local
# connection, so the password is never checked there; it is in the URL so that
# tests/secret_guard.py catches any unredacted URL in the output.
ROLE = "ibwatch_test"
PASSWORD = "SECRET-PG-PASSWORD"

_names = itertools.count()


@dataclass
class Server:
    """A PostgreSQL server the tests create databases on."""

    admin_url: str  # a superuser (or CREATEDB role), on its maintenance database

    def new_database(self) -> str:
        """Create an empty database owned by the test role; its URL (with the password)."""
        import psycopg

        name = f"ibwatch_test_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" OWNER "{ROLE}"')
        return _with_database(self.admin_url, name, user=ROLE, password=PASSWORD)

    def drop_database(self, url: str) -> None:
        """Drop a database `new_database` made, closing whatever connections are left."""
        import psycopg

        name = urllib.parse.urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def prepare(self) -> None:
        """Create the test role, once per server."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            known = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
            if known is None:
                admin.execute(f"CREATE ROLE \"{ROLE}\" LOGIN PASSWORD '{PASSWORD}'")


@dataclass
class OwnedServer(Server):
    """A pgserver cluster this test process started, and so may stop and start."""

    handle: PostgresServer

    def stop(self) -> None:
        """Stop the server the way an operator's restart does (`pg_ctl stop`, fast mode:
        open sessions are ended, then it shuts down cleanly)."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        """Start the same data directory again, on the same socket: the same URL works."""
        from pgserver.utils import PostmasterInfo

        socket_dir = self.handle.get_postmaster_info().socket_dir
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.handle.log), "start"
        )
        # pgserver stops the server at exit only if the process it remembers runs.
        self.handle._postmaster_info = PostmasterInfo.read_from_pgdata(self.handle.pgdata)

    @property
    def running(self) -> bool:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.handle.pgdata)
        return info is not None and info.is_running()

    def shut_down(self) -> None:
        if self.running:
            self.stop()
        # Stopped: pgserver's own stop at exit would find no server and, its pid file
        # gone, signal the pid it remembers instead (by then maybe another process's).
        atexit.unregister(self.handle._cleanup)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self.handle.pgdata, user=self.handle.system_user, timeout=30)


@dataclass
class RestartablePostgres:
    """A fresh database on a server the test may stop and start."""

    url: str
    server: OwnedServer

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


def start_owned_server(data_dir: Path) -> OwnedServer:
    """Start a pgserver cluster in `data_dir` (created by initdb when new)."""
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (as
        # for root in a container) and falls back to /tmp/runtime-<uid>: fine here.
        warnings.simplefilter("ignore")
        import pgserver
        import psycopg

    handle = pgserver.get_server(data_dir, cleanup_mode="stop")
    server = OwnedServer(admin_url=handle.get_uri(), handle=handle)
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        # A throwaway cluster: durability buys the tests nothing and costs each
        # CREATE DATABASE and commit an fsync. (All three apply on reload.)
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            admin.execute(f"ALTER SYSTEM SET {setting} = off")
        admin.execute("SELECT pg_reload_conf()")
    server.prepare()
    return server


def _with_database(url: str, database: str, *, user: str, password: str) -> str:
    """`url` naming another database and role, its query (a socket's host=) kept."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    credentials = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit(
        (parts.scheme, f"{credentials}@{host}{port}", f"/{database}", parts.query, "")
    )


@pytest.fixture(scope="session")
def _owned_postgres() -> Iterator[OwnedServer]:
    # Not under pytest's tmp_path: run as root, the server runs as pgserver's own user,
    # which must traverse the directories above its data, and every pytest session
    # takes group and other permissions off /tmp/pytest-of-<user> again as it starts.
    home = Path(tempfile.mkdtemp(prefix="ibwatch-pg-"))
    try:
        server = start_owned_server(home / "data")
        try:
            yield server
        finally:
            server.shut_down()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def _postgres_server(request: pytest.FixtureRequest) -> Server:
    external = os.environ.get(ENVIRONMENT_VARIABLE)
    if external:
        server = Server(admin_url=external)
        server.prepare()
        return server
    owned: OwnedServer = request.getfixturevalue("_owned_postgres")
    return owned


@pytest.fixture
def postgres_url(_postgres_server: Server) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = _postgres_server.new_database()
    try:
        yield url
    finally:
        _postgres_server.drop_database(url)


@dataclass
class DmlOnlyRole:
    """A role that may only SELECT, INSERT, UPDATE and DELETE the rows of one
    database's tables (and use its schema): it can create, alter or drop nothing."""

    url: str
    owner_url: str
    name: str

    def grant(self) -> None:
        """Grant the role its rights on the tables that exist now (the schema's)."""
        import psycopg

        with psycopg.connect(self.owner_url, autocommit=True) as owner:
            owner.execute(f'GRANT USAGE ON SCHEMA public TO "{self.name}"')
            owner.execute(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                f'TO "{self.name}"'
            )


@pytest.fixture
def dml_only_role(_postgres_server: Server, postgres_url: str) -> Iterator[DmlOnlyRole]:
    """A least-privileged role on `postgres_url`'s database, granted nothing until the
    test calls `grant()`."""
    import psycopg

    name = f"ibwatch_app_{os.getpid()}_{next(_names)}"
    with psycopg.connect(_postgres_server.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{PASSWORD}'")
    database = urllib.parse.urlsplit(postgres_url).path.lstrip("/")
    url = _with_database(_postgres_server.admin_url, database, user=name, password=PASSWORD)
    try:
        yield DmlOnlyRole(url=url, owner_url=postgres_url, name=name)
    finally:
        # The database first: a role cannot be dropped while it holds rights in one.
        _postgres_server.drop_database(postgres_url)
        with psycopg.connect(_postgres_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def restartable_postgres(_owned_postgres: OwnedServer) -> Iterator[RestartablePostgres]:
    """A fresh database on a server the test may stop and start; running again after."""
    url = _owned_postgres.new_database()
    try:
        yield RestartablePostgres(url=url, server=_owned_postgres)
    finally:
        if not _owned_postgres.running:
            _owned_postgres.start()
        _owned_postgres.drop_database(url)
