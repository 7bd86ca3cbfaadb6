"""Where the watcher remembers what it saw: the tracked state per watched ARN and
the events it emitted, written together so a restart neither repeats nor misses
a transition.

`SqliteStore` (a file; the daemon's default), `PostgresStore` (a database several
replicas share, `[state] url`) and `MemoryStore` (one-shot runs) implement the
`Store` protocol; `open_store` opens the one a config's `[state]` names.
"""

from watcher.store.base import Store
from watcher.store.errors import Fenced, StoreError
from watcher.store.memory import MemoryStore
from watcher.store.opening import StateStore, open_store
from watcher.store.postgres import PostgresStore
from watcher.store.sqlite import SqliteStore

__all__ = [
    "Fenced",
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "StateStore",
    "Store",
    "StoreError",
    "open_store",
]
