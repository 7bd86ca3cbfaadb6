-- The PostgreSQL store's first schema: the SQLite store's tables (watched, events,
-- deliveries, sources, dead_letters), the leadership row that replicas sharing
-- this database fence their writes with (watcher/store/postgres.py), and the
-- leader's heartbeat row (watcher/leadership/postgres.py).
--
-- Payloads (tracked state, events) are JSON kept as text, as in SQLite: read back
-- exactly as written, and text takes a "\u0000" escape that jsonb refuses.
-- observed_at and updated_at are timestamps, so pruning compares them in SQL;
-- the outbox's times are epoch seconds, as the dispatcher computes them.
-- Sequence numbers are identities: a standby that takes over resumes the outbox
-- under the same delivery numbers (`ibwatch deliveries replay 42` means one row).

CREATE TABLE watched (
    arn text PRIMARY KEY,
    tracked text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    watched text NOT NULL,
    build_arn text NOT NULL,
    payload text NOT NULL,
    observed_at timestamptz NOT NULL
);
CREATE INDEX events_by_watched ON events (watched, seq);
CREATE INDEX events_by_observed_at ON events (observed_at);

CREATE TABLE deliveries (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL REFERENCES events (id),
    sink text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    created_at double precision NOT NULL,
    last_error text,
    UNIQUE (event_id, sink)
);
CREATE INDEX deliveries_by_sink ON deliveries (sink, seq);

CREATE TABLE sources (
    source text PRIMARY KEY,
    followed_since double precision NOT NULL
);

CREATE TABLE dead_letters (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL REFERENCES events (id),
    sink text NOT NULL,
    attempts integer NOT NULL,
    created_at double precision NOT NULL,
    died_at double precision NOT NULL,
    reason text NOT NULL
);
CREATE INDEX dead_letters_by_event ON dead_letters (event_id);

-- One row: the epoch every write is fenced with. A leader bumps `epoch` when it
-- takes over; a write reads it under FOR SHARE in its own transaction, so it lands
-- before the takeover or is refused after it. Nothing else updates this row: an
-- update waits for every fenced write in flight (which is why the heartbeat has a
-- row of its own, below).
CREATE TABLE leadership (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch bigint NOT NULL DEFAULT 0
);
INSERT INTO leadership DEFAULT VALUES;

-- One row: who leads, and when it last said it is alive (epoch seconds on the
-- database server's clock). Apart from `leadership` so that the leader's heartbeat
-- never waits for a fenced write's FOR SHARE lock, nor holds one up. `epoch` is the
-- term the holder took office in: the leader heartbeats with
-- `UPDATE ... WHERE id = 1 AND epoch = its own`, and a new leader sets all three in
-- the transaction that bumps `leadership.epoch`.
CREATE TABLE leader_heartbeat (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch bigint NOT NULL DEFAULT 0,
    holder text,
    heartbeat_at double precision
);
INSERT INTO leader_heartbeat DEFAULT VALUES;
