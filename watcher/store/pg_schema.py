"""The PostgreSQL store's schema: numbered migrations (`pg_migrations/NNNN_name.sql`,
shipped as package data), each applied once, in order, and recorded in
`schema_migrations`.

Opening reads the schema's version first and runs no DDL on a database that is up
to date: a role with only SELECT/INSERT/UPDATE/DELETE can run a replica or an
operator command once the schema exists. Behind, the daemon migrates under one
advisory lock held for the whole transaction, reading the version again once it
holds it: two replicas starting together apply each migration once, and the second
sees the first's work. A database migrated by a newer ibwatch is refused, never
written to. PostgreSQL runs DDL inside transactions, so a migration that fails
leaves the schema as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow

MIGRATION_LOCK = 0x1B_3A7C_0001
"""The advisory lock key migrations run under (pg_advisory_xact_lock takes a bigint;
this one is ibwatch's own, unlikely to meet another application's in the same
database)."""

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class NewerSchema(Exception):
    """The database holds migrations this ibwatch does not know."""


class SchemaBehind(Exception):
    """The database lacks migrations this ibwatch needs, and the caller may not apply
    them (an operator command); the message says how to."""


def migrations() -> list[Migration]:
    """The migrations this ibwatch ships, in order."""
    found = []
    for entry in resources.files("watcher.store").joinpath("pg_migrations").iterdir():
        matched = _NAME.fullmatch(entry.name)
        if matched:
            found.append(Migration(int(matched[1]), matched[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    # A gap or a repeat is a packaging mistake, found by the tests, never by a user.
    assert versions == list(range(1, len(found) + 1)), f"migrations numbered {versions}"
    return found


LATEST = len(migrations())


async def schema_version(connection: AsyncConnection[TupleRow]) -> int:
    """The latest migration the database has applied; 0 for one never migrated. Runs
    no DDL and takes no lock."""
    cursor = await connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


def _refuse_newer(current: int) -> None:
    if current > LATEST:
        raise NewerSchema(f"written by a newer ibwatch (schema {current}, this one knows {LATEST})")


async def require_current(connection: AsyncConnection[TupleRow]) -> None:
    """Raise SchemaBehind (or NewerSchema) unless the schema is exactly this ibwatch's.
    For callers that must not change the schema: it runs no DDL."""
    current = await schema_version(connection)
    _refuse_newer(current)
    if current < LATEST:
        found = "has no ibwatch schema yet" if current == 0 else f"has schema {current}"
        raise SchemaBehind(
            f"{found}, this ibwatch needs schema {LATEST}: run `ibwatch run` once to "
            "create or upgrade it (the daemon migrates as it starts)"
        )


async def migrate(connection: AsyncConnection[TupleRow]) -> list[int]:
    """Bring the schema up to date; the versions it applied (none when current, and
    then without any DDL or lock). Raises NewerSchema for a database a newer ibwatch
    migrated."""
    current = await schema_version(connection)
    _refuse_newer(current)
    if current == LATEST:
        return []
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Again under the lock: another replica may have migrated while we waited.
        current = await schema_version(connection)
        _refuse_newer(current)
        for migration in migrations()[current:]:
            # As bytes: psycopg takes a script read from a file so (a str must be a
            # literal), and sends it whole, every statement in it, having no parameters.
            await connection.execute(migration.sql.encode())
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied
