"""Leadership among replicas sharing one PostgreSQL database.

The leader holds a session-level advisory lock on a connection of its own (the lock
session), apart from the store's pool, and takes office on that same session the
moment it has the lock, before it connects anything else: one transaction bumps the
epoch of the `leadership` row and names the new leader in `leader_heartbeat`. The
store checks that epoch inside every write's own transaction
(`PostgresStore.fence_epoch`), so the late writes of a deposed leader are refused,
never interleaved with the new leader's.

The server drops the lock the moment the session ends, so a leader that exits,
crashes or is killed hands over at a standby's next look (every failover / 5). A
leader alive but silent (paused, cut off) keeps its session and its lock: a standby
that finds its heartbeat older than `failover` ends that session
(pg_terminate_backend) and takes the lock. So is a replica's that took the lock and
stopped before taking office, once its session has been quiet for `failover`.

A leader steps down at once when its lock session ends (it watches the connection),
when a heartbeat is refused (a newer epoch), and when its lease runs out: `failover
- heartbeat` after it SENT the last heartbeat that got through, one heartbeat before
any standby may depose it. What acts outside (a delivery, a poll) asks
`check_lease()` first, so a leader resumed after a pause acts on nothing it held.

Session advisory locks need a session of one's own: connect to PostgreSQL directly,
or through a pooler in session mode. A transaction-mode pooler (PgBouncer's
`pool_mode = transaction`) lends the lock's server session to other clients between
transactions and breaks the election.

Writes nothing but the `leadership` and `leader_heartbeat` rows, and never clears
them: the next leader's bump is what deposes. The heartbeat has a row of its own so
that it never waits for a fenced write's FOR SHARE lock on `leadership`. Sleeps and
deadlines are on the injected clock; how long a leader has been silent is measured
on the database server's clock, the one clock every replica shares.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from typing import Any, Protocol

import anyio
import psycopg
import structlog
from psycopg import AsyncConnection

from watcher.clock import Clock
from watcher.config.ha import BEATS_PER_FAILOVER
from watcher.leadership import Lead, LeaderMetrics, LeaseExpired, Role
from watcher.store.database_url import MASK, redact, secrets
from watcher.store.errors import Fenced, StoreError

log = structlog.get_logger("ibwatch")

LOCK_KEY = 0x1B_3A7C_0002
"""The leader's advisory lock (a bigint key): ibwatch's own family, beside the key
migrations run under (0x1B_3A7C_0001, watcher.store.pg_schema)."""

LOCK_APPLICATION = "ibwatch leadership"
"""The application_name of every replica's lock session: a standby ends such a
session that holds the lock without having taken office, never another one."""
BEAT_APPLICATION = "ibwatch heartbeat"

_NOW = "extract(epoch FROM clock_timestamp())::float8"  # numeric, else (PostgreSQL 14+)
_THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"

_LOOK = f"""
    SELECT h.epoch, h.holder, {_NOW} - h.heartbeat_at, l.pid, a.application_name,
           {_NOW} - extract(epoch FROM coalesce(a.state_change, a.backend_start))::float8
    FROM leader_heartbeat AS h
    LEFT JOIN pg_locks AS l
      ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
     AND l.classid::bigint = %(high)s AND l.objid::bigint = %(low)s
     AND l.database = {_THIS_DATABASE}
    LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE h.id = 1
    LIMIT 1
"""
"""What a standby looks at: the recorded leader and how long it has been silent, and
the session holding the lock, with how long that session has been quiet (its last
change of state; a lock session goes quiet once it has taken office). pg_locks shows
a bigint advisory key as its high half in classid, its low half in objid, and
objsubid 1 (PostgreSQL docs, "pg_locks": advisory locks); advisory locks are per
database. pg_stat_activity shows state_change only for sessions of one's own role
(or with pg_read_all_stats): the same role every replica must connect as."""
_KEY_PARTS = {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFF_FFFF}

_END_SILENT_LEADER = f"""
    SELECT pg_terminate_backend(%(pid)s) FROM leader_heartbeat
    WHERE id = 1 AND epoch = %(epoch)s AND holder = %(holder)s
      AND heartbeat_at < {_NOW} - %(failover)s
"""
"""Checked again in the same statement: the leader may have come back, or been
replaced, since the look."""

_END_STALLED_TAKER = f"""
    SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity AS a, leader_heartbeat AS h
    WHERE a.pid = %(pid)s AND a.application_name = %(application)s AND h.id = 1
      AND right(coalesce(h.holder, ''), length(%(suffix)s)) <> %(suffix)s
      AND {_NOW} - extract(epoch FROM coalesce(a.state_change, a.backend_start))::float8
          > %(failover)s
"""
"""A replica's lock session that has not taken office (the record names another
session) and has been quiet for longer than `failover`: stopped (paused, its host
lost) between taking the lock and bumping the epoch, which it does at once."""

_STUCK_WRITERS = f"""
    SELECT pid, pg_terminate_backend(pid) FROM pg_locks
    WHERE locktype = 'relation' AND relation = 'leadership'::regclass
      AND database = {_THIS_DATABASE}
      AND mode = 'RowShareLock' AND granted AND pid <> pg_backend_pid()
"""
"""The sessions of this database in a fenced write transaction (its `SELECT ... FOR
SHARE` of the leadership row takes RowShareLock on the table). Asked only by a
replica that holds the lock and has not begun to write: each is a former leader's
write caught in flight, a paused one's perhaps, that would hold the epoch bump back
forever. (Another database's tables have other oids, yet `relation` alone could
match one: hence the database.)"""


class FencedStore(Protocol):
    fence_epoch: int | None
    """The epoch every write checks; None: unfenced."""


class _Lost(Exception):
    """The term is over; the message says why."""


class PostgresLeadership:
    """Elect one leader among the replicas of one database; see the module's docstring."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        store: FencedStore,
        clock: Clock,
        failover: float,
        metrics: LeaderMetrics,
        name: str | None = None,
    ) -> None:
        self._url = url
        self._where = redact(url)
        self._secrets = secrets(url)
        self._store = store
        self._clock = clock
        self._failover = failover
        self._beat = failover / BEATS_PER_FAILOVER
        self._lease = failover - self._beat
        """How long after sending a heartbeat that got through this replica may act:
        a heartbeat short of the `failover` after which a standby may depose it."""
        self._metrics = metrics
        self._name = name or f"{socket.gethostname()} pid {os.getpid()}"
        self._role: Role = "standby"
        self._valid_until = -math.inf
        """The end of the lease, on the clock's monotonic time."""
        self._problem: str | None = None
        self._retired = False
        self._leaderless_since: float | None = None
        """When this standby first found nobody leading (monotonic); None: someone leads."""
        self._next_look = self._beat
        self._said_standby = False
        self._said_cannot_depose = False
        self._said_stranger = False
        self.epoch: int | None = None
        """The epoch of the current (or last) term; None before the first."""
        metrics.leader.set(0)

    @property
    def role(self) -> Role:
        return self._role

    @property
    def problem(self) -> str | None:
        return self._problem

    def check_lease(self) -> None:
        if self._role != "leader":
            raise LeaseExpired("this replica's term is over")
        overdue = self._clock.monotonic() - self._valid_until
        if overdue >= 0:
            raise LeaseExpired(self._lapsed(overdue))

    def retire(self) -> None:
        self._retired = True

    async def run(self, lead: Lead) -> None:
        while not self._retired:
            office = await self._take_office()
            if office is None:
                return  # retired
            lock, epoch = office
            try:
                why = await self._serve_term(lock, epoch, lead)
            finally:
                self._role = "standby"
                self._valid_until = -math.inf
                self._metrics.leader.set(0)
                await _close(lock)
            if why is not None:
                log.warning("ibwatch.leader.lost", epoch=self.epoch, why=why)
            self._said_standby = False
            # Not straight back: a term that ended on an error should not become a
            # loop of terms, each bumping the epoch.
            await self._clock.sleep(self._beat)

    # -- standing by ---------------------------------------------------------

    async def _take_office(self) -> tuple[AsyncConnection[Any], int] | None:
        """The lock session and the new epoch, once this replica has the lock and has
        taken office; None once retired."""
        connection: AsyncConnection[Any] | None = None
        try:
            while not self._retired:
                wait = self._beat
                with self._clock.move_on_after(self._failover) as deadline:
                    try:
                        if connection is None:
                            connection = await self._connect(LOCK_APPLICATION)
                        if await self._try_lock(connection) or await self._depose(connection):
                            if self._retired:
                                return None  # stopping: the lock goes as it closes
                            # At once, on the lock session: a replica that has the
                            # lock but has not taken office can only be ended by a
                            # standby after `failover` of quiet.
                            epoch = await self._bump(connection)
                            self._problem = None
                            self._leaderless_since = None
                            found, connection = connection, None
                            return found, epoch
                        wait = self._next_look
                    except psycopg.errors.InsufficientPrivilege as exc:
                        self._cannot_depose(exc)
                    except (psycopg.Error, OSError) as exc:
                        self._unreachable(self._first_line(exc))
                        await _close(connection)
                        connection = None
                    except StoreError as exc:
                        self._problem = str(exc)
                        await _close(connection)
                        connection = None
                if deadline.cancelled_caught:
                    self._unreachable(f"no answer within {self._failover:g}s")
                    await _close(connection)
                    connection = None
                await self._clock.sleep(wait)
            return None
        finally:
            await _close(connection)

    async def _connect(self, application: str) -> AsyncConnection[Any]:
        # TCP keepalives and a user timeout on both ends, within about `failover`: the
        # server ends the session (and drops the lock) of a leader whose host is gone,
        # and this replica learns that its own connection is dead. (Unix sockets have
        # no TCP: the server reads both settings as 0 there.)
        probe = max(1, math.ceil(self._beat))
        timeout = max(1000, round(self._failover * 1000))
        connection = await AsyncConnection.connect(
            self._url,
            autocommit=True,
            application_name=application,
            # libpq's own deadline, whole seconds, at least 2 (libpq's minimum).
            connect_timeout=max(2, math.ceil(self._failover)),
            keepalives=1,
            keepalives_idle=probe,
            keepalives_interval=probe,
            keepalives_count=3,
            tcp_user_timeout=timeout,
        )
        try:
            await connection.execute(
                "SELECT set_config('tcp_keepalives_idle', %(probe)s, false), "
                "set_config('tcp_keepalives_interval', %(probe)s, false), "
                "set_config('tcp_keepalives_count', '3', false), "
                "set_config('tcp_user_timeout', %(timeout)s, false)",
                {"probe": str(probe), "timeout": str(timeout)},
            )
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _try_lock(self, connection: AsyncConnection[Any]) -> bool:
        cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def _depose(self, connection: AsyncConnection[Any]) -> bool:
        """End the lock's session if its holder has been silent for longer than
        `failover`, then take the lock; whether it was taken. Sets when to look next
        (`_next_look`) and whether nobody has led for too long (`problem`); says once
        per standby period who leads."""
        self._next_look = self._beat
        cursor = await connection.execute(_LOOK, _KEY_PARTS)
        row = await cursor.fetchone()
        if row is None:
            raise StoreError(f"{self._where}: the leader_heartbeat row is missing; was it deleted?")
        epoch, holder, silent, pid, application, quiet = row
        if pid is None:
            # Let go of since the try a moment ago: try again soon.
            self._next_look = self._beat / 4
            return False
        if holder is not None and holder.endswith(_backend(pid)):
            if not self._said_standby:
                self._said_standby = True
                log.info("ibwatch.leader.standby", leader=holder, epoch=epoch)
            if silent is None or silent <= self._failover:
                self._leader_seen()
                # Look again when its silence would pass `failover` (if it stays
                # silent), or a heartbeat from now, whichever comes first: a standby
                # deposes a silent leader at `failover`, not up to a heartbeat later.
                self._next_look = min(self._beat, self._failover - (silent or 0) + self._margin)
                return False
            self._no_leader(f"the leader {holder} has been silent for {silent:.0f}s")
            cursor = await connection.execute(
                _END_SILENT_LEADER,
                {"pid": pid, "epoch": epoch, "holder": holder, "failover": self._failover},
            )
            if await cursor.fetchone() is None:
                return False
            log.warning(
                "ibwatch.leader.deposing",
                leader=holder,
                epoch=epoch,
                silent_s=round(silent, 1),
                failover_s=self._failover,
            )
        elif application == LOCK_APPLICATION:
            # A replica between taking the lock and taking office: for a moment, or
            # for good if it stopped right there.
            self._no_leader(f"backend {pid} holds the lock and has not taken office")
            if quiet is None or quiet <= self._failover:
                self._next_look = min(self._beat, self._failover - (quiet or 0) + self._margin)
                return False
            cursor = await connection.execute(
                _END_STALLED_TAKER,
                {
                    "pid": pid,
                    "application": LOCK_APPLICATION,
                    "suffix": _backend(pid),
                    "failover": self._failover,
                },
            )
            if await cursor.fetchone() is None:
                return False
            log.warning(
                "ibwatch.leader.deposing",
                leader=f"backend {pid}",
                epoch=epoch,
                quiet_s=round(quiet, 1),
                failover_s=self._failover,
                why="it took the lock and never took office",
            )
        else:
            # Someone holds ibwatch's lock without being a replica: an operator's
            # session, or another application using the key. Not ours to end.
            self._no_leader(
                f"backend {pid} ({application or 'application unknown'}), not an ibwatch "
                "replica, holds the leader lock"
            )
            if not self._said_stranger:
                self._said_stranger = True
                log.warning(
                    "ibwatch.leader.lock_held_by_stranger",
                    backend_pid=pid,
                    application=application,
                    recorded_leader=holder,
                    note="not ended: only a replica's lock session is; see pg_stat_activity",
                )
            return False
        # The ended session lets go of the lock as its backend exits: soon, not at once.
        for _ in range(3 * 20):
            if await self._try_lock(connection):
                return True
            await self._clock.sleep(self._beat / 20)
        return False

    @property
    def _margin(self) -> float:
        """How far past a deadline on the server's clock a standby looks again, so
        that the look finds it passed."""
        return self._beat / 20

    def _leader_seen(self) -> None:
        self._leaderless_since = None
        self._problem = None

    def _no_leader(self, why: str) -> None:
        """Nobody leads now; after two `failover`s of that, a standby is not ready:
        the replicas are not doing their job, and someone must look."""
        now = self._clock.monotonic()
        if self._leaderless_since is None:
            self._leaderless_since = now
        leaderless = now - self._leaderless_since
        self._problem = None
        if leaderless > 2 * self._failover:
            self._problem = (
                f"no replica has led for {leaderless:.0f}s (failover {self._failover:g}s): {why}"
            )

    def _first_line(self, exc: BaseException) -> str:
        """`exc` in one line for a log or /readyz, the URL's password masked should
        libpq ever quote it."""
        text = _first_line(exc)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _unreachable(self, why: str) -> None:
        if self._problem is None or "was not reached" not in self._problem:
            log.warning("ibwatch.leader.database_unreachable", database=self._where, error=why)
        self._problem = f"the database {self._where} was not reached: {why}"

    def _cannot_depose(self, exc: psycopg.Error) -> None:
        problem = (
            "cannot end the silent leader's database session: every replica must connect "
            "as the same role, or this one needs pg_signal_backend"
        )
        if not self._said_cannot_depose:
            self._said_cannot_depose = True
            log.error("ibwatch.leader.cannot_depose", error=self._first_line(exc), why=problem)
        self._problem = problem

    async def _bump(self, lock: AsyncConnection[Any]) -> int:
        """Take office on the lock session: bump the epoch, and name this replica in
        `leader_heartbeat`, in one transaction; the new epoch. Starts the lease. A
        former leader's write caught in flight holds the bump back: its session is
        ended."""
        holder = f"{self._name}{_backend(lock.info.backend_pid)}"
        while True:
            sent = self._clock.monotonic()
            try:
                async with lock.transaction():
                    await lock.execute(
                        "SELECT set_config('lock_timeout', %s, true)",
                        (f"{max(1, round(self._beat * 1000))}ms",),
                    )
                    cursor = await lock.execute(
                        "UPDATE leadership SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch"
                    )
                    row = await cursor.fetchone()
                    if row is None:
                        raise StoreError(
                            f"{self._where}: the leadership row is missing; was it deleted?"
                        )
                    cursor = await lock.execute(
                        f"UPDATE leader_heartbeat SET epoch = %s, holder = %s, "
                        f"heartbeat_at = {_NOW} WHERE id = 1 RETURNING id",
                        (row[0], holder),
                    )
                    if await cursor.fetchone() is None:
                        raise StoreError(
                            f"{self._where}: the leader_heartbeat row is missing; was it deleted?"
                        )
            except psycopg.errors.LockNotAvailable:
                cursor = await lock.execute(_STUCK_WRITERS)
                ended = [pid for pid, done in await cursor.fetchall() if done]
                log.warning("ibwatch.leader.ended_stuck_writers", backend_pids=ended)
                continue
            self._valid_until = sent + self._lease
            return int(row[0])

    # -- leading -------------------------------------------------------------

    async def _serve_term(self, lock: AsyncConnection[Any], epoch: int, lead: Lead) -> str | None:
        """Lead, with the office taken on `lock`, until the term ends; why it ended
        (None: it never began, and nothing was done)."""
        beat: AsyncConnection[Any] | None = None
        try:
            try:
                with self._clock.move_on_after(self._valid_until - self._clock.monotonic()):
                    beat = await self._connect(BEAT_APPLICATION)
            except (psycopg.Error, OSError) as exc:
                self._unreachable(self._first_line(exc))
                return None
            if beat is None:
                self._unreachable(f"no heartbeat connection within {self._lease:g}s")
                return None
            return await self._lead(lock, beat, epoch, lead)
        finally:
            await _close(beat)

    async def _lead(
        self, lock: AsyncConnection[Any], beat: AsyncConnection[Any], epoch: int, lead: Lead
    ) -> str:
        self.epoch = epoch
        self._store.fence_epoch = epoch
        self._role = "leader"
        self._metrics.leader.set(1)
        self._metrics.epoch.set(epoch)
        log.info("ibwatch.leader.acquired", epoch=epoch, holder=self._name)
        # Several can end a term at once (a refused write and the lost session):
        # said is the first of these, in this order.
        why: list[str] = []
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch_lock, lock)
                group.start_soon(self._heartbeat, beat, epoch)
                await lead()
                await anyio.sleep_forever()
        except* Fenced as refused:
            fenced = _leaves(refused)
            self._metrics.fenced_writes.inc(len(fenced))
            why.append(f"a write was refused: {fenced[0]}")
        except* _Lost as lost:
            why.append(str(_leaves(lost)[0]))
        except* LeaseExpired as lapsed:
            why.append(str(_leaves(lapsed)[0]))
        except* (StoreError, psycopg.Error) as failed:
            why.append(f"the store failed: {self._first_line(_leaves(failed)[0])}")
        return why[0] if why else "the term ended"

    async def _watch_lock(self, lock: AsyncConnection[Any]) -> None:
        """Raises `_Lost` the moment the lock session ends (terminated, the server
        restarted, the connection broke): libpq reads the end of the stream while
        it waits for notifications, which never come otherwise."""
        try:
            async for _ in lock.notifies():
                pass
        except psycopg.Error as exc:
            raise _Lost(f"the session holding the lock ended: {self._first_line(exc)}") from None
        raise _Lost("the session holding the lock ended")

    async def _heartbeat(self, beat: AsyncConnection[Any], epoch: int) -> None:
        """Raises `Fenced`, `_Lost` or `LeaseExpired` when the term is over; runs until
        then. Each heartbeat that gets through extends the lease from when it was
        sent: the server may have written it at any moment after that."""
        while True:
            await self._clock.sleep(self._beat)
            sent = self._clock.monotonic()
            left = self._valid_until - sent
            if left <= 0:  # paused past the lease: a standby may be leading already
                raise LeaseExpired(self._lapsed(-left))
            # A query cut off by this deadline does not hold the term past it, even
            # under a partition: psycopg, interrupted, asks the server to cancel it
            # and waits for the query up to 5 s twice (connection_async.py, `wait`),
            # but anyio's cancel scopes stay cancelled until left (level-triggered),
            # so each of those waits is cancelled at once, and psycopg closes the
            # connection instead. An edge-triggered `asyncio.timeout` here would let
            # both waits run: the term would end ~10 s late. tests/ha/test_partition.py
            # holds this to the lease.
            with self._clock.move_on_after(left) as deadline:
                await self._beat_once(beat, epoch)
            if deadline.cancelled_caught:
                raise LeaseExpired(self._lapsed(0))
            self._valid_until = sent + self._lease

    def _lapsed(self, overdue: float) -> str:
        return (
            f"no heartbeat got through for {self._lease:g}s (failover {self._failover:g}s "
            f"less one heartbeat): this replica's lease ran out"
            + (f" {overdue:.1f}s ago" if overdue >= 0.05 else "")
        )

    async def _beat_once(self, beat: AsyncConnection[Any], epoch: int) -> None:
        try:
            cursor = await beat.execute(
                f"UPDATE leader_heartbeat SET heartbeat_at = {_NOW} "
                "WHERE id = 1 AND epoch = %s RETURNING epoch",
                (epoch,),
            )
            if await cursor.fetchone() is None:
                cursor = await beat.execute("SELECT epoch FROM leadership WHERE id = 1")
                row = await cursor.fetchone()
                raise Fenced(self._where, epoch, int(row[0]) if row else -1)
        except psycopg.Error as exc:
            raise _Lost(f"the database was lost: {self._first_line(exc)}") from exc


def _backend(pid: int) -> str:
    """How a holder's name ends: the backend that holds the lock, which a standby
    checks before ending it."""
    return f" (backend {pid})"


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


async def _close(connection: AsyncConnection[Any] | None) -> None:
    """Close `connection`, even in a cancelled scope: its lock must not outlive us."""
    if connection is None:
        return
    # Closed is what we wanted, however the close itself ends.
    with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error, OSError):
        await connection.close()
