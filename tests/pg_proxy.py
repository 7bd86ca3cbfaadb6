"""A loopback TCP proxy in front of the tests' PostgreSQL, for tests that make the
network between ibwatch and its database misbehave: each test gives what to do with
one client connection (`Handler`), this module the listener and the URL through it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio import CancelScope
from anyio.abc import SocketStream
from psycopg.conninfo import conninfo_to_dict

Connect = Callable[[], Awaitable[SocketStream]]
"""Opens a new connection to the database server."""
Handler = Callable[[SocketStream, Connect], Awaitable[None]]
"""Serves one client connection; may call `Connect` for its server side."""


@asynccontextmanager
async def pg_proxy(url: str, handle: Handler) -> AsyncIterator[tuple[str, CancelScope]]:
    """Listen on 127.0.0.1 while open, each connection served by `handle`. Gives the
    database URL through the proxy (the same role, password and database; SSL and GSS
    encryption off, since a proxy reading the protocol cannot read their unframed
    one-byte answers at startup) and the scope whose cancel closes every connection
    and stops listening."""
    target = conninfo_to_dict(url)
    host = str(target.get("host") or "/tmp")
    port = int(target.get("port") or 5432)

    async def connect() -> SocketStream:
        if host.startswith("/"):
            return await anyio.connect_unix(f"{host}/.s.PGSQL.{port}")
        return await anyio.connect_tcp(host, port)

    async def serve(client: SocketStream) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            async with client:
                await handle(client, connect)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    listening_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    proxied = (
        f"postgresql://{target['user']}:{target.get('password', '')}@127.0.0.1:"
        f"{listening_port}/{target['dbname']}?sslmode=disable&gssencmode=disable"
    )
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        try:
            yield proxied, group.cancel_scope
        finally:
            group.cancel_scope.cancel()
