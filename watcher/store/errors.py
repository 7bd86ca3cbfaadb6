"""What a store raises: `StoreError` when the state cannot be used (the message names
the file or the redacted database URL, and why), and its kind `Fenced` when a
replica that lost the leadership tries to write."""

from __future__ import annotations


class StoreError(Exception):
    """The state store cannot be used; the message names the file or database and why."""


class Fenced(StoreError):
    """A write refused because a newer leader took over: the leadership epoch in the
    database is not the one this store writes under (`PostgresStore.fence_epoch`).
    Nothing of the refused write was kept."""

    def __init__(self, url: str, mine: int, current: int) -> None:
        super().__init__(
            f"{url}: this replica is no longer the leader (its epoch {mine}, the "
            f"database's {current}): write refused, nothing of it was kept"
        )
        self.mine = mine
        self.current = current
