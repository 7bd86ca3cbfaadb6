"""Where the watcher remembers what it saw: the tracked state per watched ARN and
the events it emitted, written together so a restart neither repeats nor misses
a transition.

`SqliteStore` (a file; the daemon) and `MemoryStore` (one-shot runs) implement
the `Store` protocol.
"""

from watcher.store.base import Store
from watcher.store.memory import MemoryStore
from watcher.store.sqlite import SqliteStore, StoreError

__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreError"]
