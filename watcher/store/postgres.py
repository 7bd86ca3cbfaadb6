"""The PostgreSQL store (`[state] url`): one database that several replicas share, the
leader writing and the standbys ready to resume its outbox under the same numbers.

The same `Store` contract as the SQLite file (tests/test_store.py holds both to it),
over psycopg 3's asyncio connections from a `psycopg_pool` pool. Every write is one
transaction; when `fence_epoch` is set, each first reads the leadership epoch under
FOR SHARE and is refused (`Fenced`, rolled back) if a newer leader bumped it, so a
write lands before a takeover or not at all.

psycopg is imported only when a store is opened: the SQLite default never needs it.
Every psycopg error becomes a `StoreError` here, naming the redacted URL; nothing
else reads a psycopg exception. Never prints or logs the URL's password. PostgreSQL's
text holds no NUL character, which a receiver's error text may carry: it is replaced
here, in the text columns written as given (`last_error`, `reason`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

from watcher.model import Transition
from watcher.store import database_url
from watcher.store.base import DeadLetter, Delivery, OutboxStats, Pruned, ended_build
from watcher.store.errors import Fenced, StoreError
from watcher.tracker import Tracked

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool

    Connection = AsyncConnection[TupleRow]

T = TypeVar("T")

WAIT_FOR_DATABASE = 30.0
"""Seconds an operation waits for a working connection (the database restarting,
a failover) before it fails with StoreError. A restart shorter than this is only a
pause to the caller."""
CONNECT_TIMEOUT = 10
"""libpq's connect_timeout when the URL sets none: an unreachable host fails in
seconds, not after the kernel's TCP timeout."""
POOL_SIZE = 4
"""Connections at most: the engine's commits and each sink's outbox reads share
them; none is held across an await that is not the database's."""
NUL_REPLACEMENT = "\ufffd"
"""What a NUL character in a stored text becomes (PostgreSQL docs, "Character
Types": the character with code zero cannot be stored), U+FFFD REPLACEMENT CHARACTER."""


class PostgresStore:
    def __init__(self, pool: AsyncConnectionPool[Connection], url: str) -> None:
        self._pool = pool
        self._secrets = database_url.secrets(url)
        self.url = database_url.redact(url)
        """The database's URL with its password masked: for messages."""
        self.fence_epoch: int | None = None
        """The leadership epoch every write must still find (see `Fenced`); None: no
        fencing (operator commands, a single replica)."""
        self.is_open = True
        """False once `close` began: what /readyz reports of the store."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        wait: float = WAIT_FOR_DATABASE,
        pool_size: int = POOL_SIZE,
        migrate: bool = True,
    ) -> PostgresStore:
        """Connect, check the schema, and open the pool. `migrate` (the daemon) brings
        a schema that is behind up to date (`pg_schema`); without it (an operator
        command) such a database is refused, and nothing runs DDL. Raises StoreError
        naming the redacted URL and why."""
        _require_psycopg(url)
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        from watcher.store import pg_schema

        shown = database_url.redact(url)
        secrets = database_url.secrets(url)
        try:
            parameters = _connection_parameters(url)
            # A connection of its own first: its error says why (refused, no such
            # database, authentication), where the pool would only time out.
            async with await psycopg.AsyncConnection.connect(url, **parameters) as connection:
                if migrate:
                    await pg_schema.migrate(connection)
                else:
                    await pg_schema.require_current(connection)
        except (pg_schema.NewerSchema, pg_schema.SchemaBehind) as exc:
            raise StoreError(f"{shown}: {exc}") from None
        except psycopg.Error as exc:
            raise StoreError(f"{shown}: cannot use the database: {_why(exc, secrets)}") from None
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            kwargs=parameters,
            min_size=1,
            max_size=pool_size,
            # Each connection is checked as it is taken: after the server restarts,
            # the dead ones are dropped and new ones made, with no error to the caller.
            check=AsyncConnectionPool.check_connection,
            timeout=wait,
            open=False,
            name="ibwatch-state",
        )
        try:
            await pool.open(wait=True, timeout=wait)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"{shown}: cannot open connections: {_why(exc, secrets)}") from None
        return cls(pool, url)

    # -- reads -------------------------------------------------------------------

    async def load_all(self) -> dict[str, Tracked]:
        return dict(await self._read("SELECT arn, tracked FROM watched", (), _tracked))

    async def events(self, watched: str | None = None) -> list[Transition]:
        if watched is None:
            return await self._read("SELECT payload FROM events ORDER BY seq", (), _event)
        return await self._read(
            "SELECT payload FROM events WHERE watched = %s ORDER BY seq", (watched,), _event
        )

    async def pending(self, sink: str, limit: int = 100) -> list[Delivery]:
        return await self._read(
            "SELECT d.seq, d.sink, e.payload, d.attempts, d.next_attempt_at, d.created_at, "
            "d.last_error FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.sink = %s ORDER BY d.seq LIMIT %s",
            (sink, limit),
            _delivery,
        )

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        query: LiteralString = (
            "SELECT d.seq, d.sink, e.payload, d.attempts, d.created_at, d.died_at, d.reason "
            "FROM dead_letters d JOIN events e ON e.id = d.event_id "
        )
        if sink is None:
            return await self._read(query + "ORDER BY d.seq", (), _dead_letter)
        return await self._read(query + "WHERE d.sink = %s ORDER BY d.seq", (sink,), _dead_letter)

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        async def read(connection: Connection) -> dict[str, OutboxStats]:
            stats: dict[str, OutboxStats] = {}
            cursor = await connection.execute(
                "SELECT sink, count(*), min(created_at) FROM deliveries GROUP BY sink"
            )
            for sink, pending, oldest in await cursor.fetchall():
                stats[sink] = OutboxStats(pending=pending, oldest_created_at=oldest)
            cursor = await connection.execute(
                "SELECT sink, count(*) FROM dead_letters GROUP BY sink"
            )
            for sink, dead in await cursor.fetchall():
                stats[sink] = replace(stats.get(sink, OutboxStats()), dead_letters=dead)
            return stats

        return await self._run(read, write=False)

    async def followed_sources(self) -> dict[str, float]:
        return dict(await self._read("SELECT source, followed_since FROM sources", (), _followed))

    # -- writes, each one fenced transaction -----------------------------------------

    async def commit(
        self,
        watched: str,
        tracked: Tracked,
        events: Sequence[Transition],
        routes: Mapping[str, Sequence[str]] | None = None,
        now: float = 0.0,
    ) -> None:
        state = tracked.model_dump_json()
        updated = tracked.snapshot.observed_at
        rows = [
            (
                e.id,
                e.watched,
                e.image.arn,
                e.model_dump_json(),
                e.observed_at,
                now,
                now,
                # An event stored before was routed then too: never route it twice.
                list(dict.fromkeys((routes or {}).get(e.id, ()))),
            )
            for e in events
        ]

        async def write(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO watched (arn, tracked, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (arn) DO UPDATE SET tracked = excluded.tracked, "
                "updated_at = excluded.updated_at",
                (watched, state, updated),
            )
            for row in rows:
                # The delivery rows only for an event this statement stored.
                await connection.execute(
                    "WITH stored AS ("
                    " INSERT INTO events (id, watched, build_arn, payload, observed_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id) "
                    "INSERT INTO deliveries (event_id, sink, next_attempt_at, created_at) "
                    "SELECT stored.id, sink, %s, %s "
                    "FROM stored, unnest(%s::text[]) WITH ORDINALITY AS routed (sink, n) "
                    "ORDER BY n ON CONFLICT (event_id, sink) DO NOTHING",
                    row,
                )

        await self._run(write, write=True)

    async def delivered(self, seq: int) -> None:
        await self._write("DELETE FROM deliveries WHERE seq = %s", (seq,))

    async def retry_later(
        self, seq: int, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        await self._write(
            "UPDATE deliveries SET attempts = %s, next_attempt_at = %s, last_error = %s "
            "WHERE seq = %s",
            (attempts, next_attempt_at, _storable(error), seq),
        )

    async def bury(self, seq: int, reason: str, now: float) -> None:
        await self._write(
            "WITH gone AS (DELETE FROM deliveries WHERE seq = %s "
            " RETURNING event_id, sink, attempts, created_at) "
            "INSERT INTO dead_letters (event_id, sink, attempts, created_at, died_at, reason) "
            "SELECT event_id, sink, attempts, created_at, %s, %s FROM gone",
            (seq, now, _storable(reason)),
        )

    async def replay(self, seqs: Sequence[int] | None, sink: str | None, now: float) -> int:
        async def move(connection: Connection) -> int:
            cursor = await connection.execute(
                "DELETE FROM dead_letters "
                "WHERE (%s::bigint[] IS NULL OR seq = ANY(%s::bigint[])) "
                "AND (%s::text IS NULL OR sink = %s::text) "
                "RETURNING seq, event_id, sink",
                (seqs_list, seqs_list, sink, sink),
            )
            moved = sorted(await cursor.fetchall())
            # In the dead letters' order, so the outbox keeps the events' order.
            async with connection.cursor() as inserting:
                await inserting.executemany(
                    "INSERT INTO deliveries (event_id, sink, next_attempt_at, created_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id, sink) DO NOTHING",
                    [(event_id, name, now, now) for _, event_id, name in moved],
                )
            return len(moved)

        seqs_list = None if seqs is None else list(seqs)
        # Never tried again: a replay whose commit landed but whose answer was lost
        # would find nothing left the second time and say it moved none.
        return await self._run(move, write=True, again=False)

    async def mark_followed(self, source: str, since: float) -> None:
        await self._write(
            "INSERT INTO sources (source, followed_since) VALUES (%s, %s) "
            "ON CONFLICT (source) DO NOTHING",
            (source, since),
        )

    async def prune(self, *, before: float, keep: Collection[str] = ()) -> Pruned:
        kept = frozenset(keep)
        cutoff = datetime.fromtimestamp(before, UTC)

        async def forget(connection: Connection) -> Pruned:
            cursor = await connection.execute(
                "DELETE FROM events e WHERE observed_at < %s "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) "
                "AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.event_id = e.id)",
                (cutoff,),
            )
            events = cursor.rowcount
            cursor = await connection.execute(
                "SELECT arn, tracked FROM watched WHERE updated_at < %s FOR UPDATE", (cutoff,)
            )
            ended = [
                arn
                for arn, tracked in await cursor.fetchall()
                if arn not in kept and ended_build(tracked)
            ]
            if ended:
                await connection.execute("DELETE FROM watched WHERE arn = ANY(%s)", (ended,))
            return Pruned(events=events, builds=len(ended))

        return await self._run(forget, write=True)

    async def close(self) -> None:
        self.is_open = False
        await self._pool.close()

    # -- the edge: connections, fencing, errors ----------------------------------

    async def _read(
        self, query: LiteralString, parameters: Sequence[object], row: Callable[..., T]
    ) -> list[T]:
        """The rows of `query`, each made by `row` from its columns."""
        from psycopg.rows import args_row

        async def read(connection: Connection) -> list[T]:
            async with connection.cursor(row_factory=args_row(row)) as cursor:
                await cursor.execute(query, parameters)
                return await cursor.fetchall()

        return await self._run(read, write=False)

    async def _write(self, query: LiteralString, parameters: Sequence[object]) -> None:
        async def write(connection: Connection) -> None:
            await connection.execute(query, parameters)

        await self._run(write, write=True)

    async def _run(
        self, work: Callable[[Connection], Awaitable[T]], *, write: bool, again: bool = True
    ) -> T:
        """`work` on a pooled connection, a write in one fenced transaction. A
        connection lost midway (the server restarted, a failover) is tried once more
        on a fresh one unless `again` is False: each write but `replay` is idempotent,
        so a commit whose answer was lost changes nothing the second time."""
        import psycopg
        from psycopg_pool import PoolTimeout

        for attempt in (1, 2):
            try:
                async with self._pool.connection() as connection:
                    if not write:
                        return await work(connection)
                    async with connection.transaction():
                        await self._check_fence(connection)
                        return await work(connection)
            except Fenced:
                raise
            except PoolTimeout as exc:
                raise StoreError(
                    f"{self.url}: no connection to the database within "
                    f"{self._pool.timeout:g}s: {_why(exc, self._secrets)}"
                ) from None
            except psycopg.OperationalError as exc:
                if not again:
                    raise StoreError(
                        f"{self.url}: the connection was lost before the database confirmed "
                        f"the write, which may or may not have been made: "
                        f"{_why(exc, self._secrets)}"
                    ) from None
                if attempt == 2:
                    raise StoreError(f"{self.url}: {_why(exc, self._secrets)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"{self.url}: {_why(exc, self._secrets)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _check_fence(self, connection: Connection) -> None:
        """Refuse the write of a replica whose leadership epoch is not the database's.
        FOR SHARE: a takeover's `UPDATE leadership` waits for this transaction. (The
        leader's heartbeat goes to `leader_heartbeat`, which this lock never holds up.)"""
        if self.fence_epoch is None:
            return
        cursor = await connection.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
        row = await cursor.fetchone()
        current = int(row[0]) if row is not None else -1
        if current != self.fence_epoch:
            raise Fenced(self.url, self.fence_epoch, current)


# -- each query's row, from its columns --------------------------------------------


def _tracked(arn: str, tracked: str) -> tuple[str, Tracked]:
    return arn, Tracked.model_validate_json(tracked)


def _event(payload: str) -> Transition:
    return Transition.model_validate_json(payload)


def _delivery(
    seq: int,
    sink: str,
    payload: str,
    attempts: int,
    due: float,
    created: float,
    error: str | None,
) -> Delivery:
    return Delivery(seq, sink, _event(payload), attempts, due, created, error)


def _dead_letter(
    seq: int, sink: str, payload: str, attempts: int, created: float, died: float, reason: str
) -> DeadLetter:
    return DeadLetter(seq, sink, _event(payload), attempts, created, died, reason)


def _followed(source: str, since: float) -> tuple[str, float]:
    return source, since


def _storable(text: str) -> str:
    """`text` as a text column can hold it: NUL replaced (see NUL_REPLACEMENT)."""
    return text.replace("\x00", NUL_REPLACEMENT)


def _require_psycopg(url: str) -> None:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401  (its absence is the same mistake)
    except ImportError:
        raise StoreError(
            f"{database_url.redact(url)}: a PostgreSQL [state] url needs psycopg: "
            "pip install 'imagebuilder-watcher[postgres]'"
        ) from None


def _connection_parameters(url: str) -> dict[str, Any]:
    """What every connection gets beside the URL: autocommit (a write opens its own
    transaction), and a connect timeout and application name unless the URL sets them."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url)
    parameters: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        parameters["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given:
        parameters["application_name"] = "ibwatch"
    return parameters


def _why(exc: BaseException, secrets: Sequence[str]) -> str:
    """psycopg's message on one line, any password in it masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secrets:
        text = text.replace(secret, database_url.MASK)
    return text
