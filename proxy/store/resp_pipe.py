"""A minimal pipelined RESP connection for the span batch path.

Why: redis-py reads a pipeline's replies one by one and enters an asyncio timeout for each (two
per span), which cost more CPU than everything else in writing a span. Here a batch is one
buffer of commands packed by hiredis, one write, and one ``hiredis.Reader`` fed from the socket
until all N replies are in. One deadline bounds the whole batch (the client's socket timeout;
the writer's ``wait_for`` bounds it too).

One connection per store, opened on first use with the client's own settings: TCP or a unix
socket, ``AUTH`` and ``SELECT`` as the URL asks. A Redis Cluster client (commands are routed by
slot) and TLS keep redis-py's pipeline (``pipe_for`` returns None). Any failure in a batch
(connection lost, unreadable reply, timeout, cancellation) closes the connection, because a
half-read reply stream must never be reused; the next batch opens a new one. Error replies
become redis-py's exception classes, and the first one is raised once every reply is read, as
redis-py's pipeline does: the connection stays in step and is kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser  # redis-py's table: error reply -> exception class
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

_MORE = object()  # hiredis: no complete reply buffered yet (None is a nil reply)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the client's connections go, and what to send before the first batch."""

    host: str
    port: int
    path: str | None  # a unix socket instead of host and port
    setup: tuple[tuple[Any, ...], ...]  # AUTH and SELECT, as the URL asks
    timeout: float | None  # one deadline per batch
    connect_timeout: float | None


def endpoint_of(client: Any) -> Endpoint | None:
    """The client's server, or None when the batch path should stay on redis-py: a cluster
    client, TLS, or a connection class this module does not know."""
    if isinstance(client, RedisCluster):
        return None
    pool = getattr(client, "connection_pool", None)
    cls = getattr(pool, "connection_class", None)
    if pool is None or not isinstance(cls, type) or issubclass(cls, SSLConnection):
        return None
    kwargs: dict[str, Any] = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None:
        return None  # credentials fetched per connection: leave them to redis-py
    if issubclass(cls, UnixDomainSocketConnection):
        host, port, path = "", 0, str(kwargs["path"])
    elif issubclass(cls, Connection):
        host, port, path = str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)), None
    else:
        return None
    return Endpoint(
        host, port, path, _setup(kwargs),
        kwargs.get("socket_timeout"), kwargs.get("socket_connect_timeout"),
    )  # fmt: skip


def _setup(kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], ...]:
    commands: list[tuple[Any, ...]] = []
    username, password = kwargs.get("username"), kwargs.get("password")
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if kwargs.get("db"):
        commands.append(("SELECT", kwargs["db"]))
    return tuple(commands)


def pipe_for(client: Any) -> RespPipe | None:
    """A ``RespPipe`` to the client's server, or None where redis-py keeps the batch path."""
    endpoint = endpoint_of(client)
    return RespPipe(endpoint) if endpoint is not None else None


def raise_first_error(packed: list[bytes], replies: list[Any]) -> None:
    """Raise the first error reply, annotated with its command's position and name (redis-py's
    pipeline does the same, naming every argument; here they may hold span content)."""
    for number, reply in enumerate(replies, 1):
        if isinstance(reply, Exception):
            name = packed[number - 1].split(b"\r\n", 3)[2].decode(errors="replace")
            reply.args = (f"Command # {number} ({name}) of pipeline caused error: {reply}",)
            raise reply


class _Replies(asyncio.Protocol):
    """The connection's protocol: bytes in, one parsed reply per command sent, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.closed = False
        self._transport: asyncio.WriteTransport | None = None
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,
            notEnoughData=_MORE,
        )
        self._waiter: asyncio.Future[list[Any]] | None = None
        self._replies: list[Any] = []
        self._expected = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses: no isinstance).
        self._transport = cast(asyncio.WriteTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f": {exc}" if exc else ""
        self._fail(RedisConnectionError(f"Connection closed by server{reason}"))

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # nothing asked: the stream is out of step
            self.abort()
            return
        self._reader.feed(data)
        replies, gets = self._replies, self._reader.gets
        try:
            while len(replies) < self._expected:
                reply = gets()
                if reply is _MORE:
                    return
                replies.append(reply)
        except InvalidResponse as exc:
            self._fail(exc)
            self.abort()
            return
        waiter.set_result(replies)

    async def exchange(self, payload: bytes, count: int) -> list[Any]:
        """Send ``count`` packed commands at once; their replies, error replies included."""
        if self._transport is None or self.closed:
            raise RedisConnectionError("Connection closed")
        self._waiter = self.loop.create_future()
        self._replies, self._expected = [], count
        self._transport.write(payload)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None and not self.loop.is_closed():
            self._transport.abort()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class RespPipe:
    """One dedicated connection that runs batches of commands in one round trip each."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._connection: _Replies | None = None
        self._lock = asyncio.Lock()  # one batch at a time on the one connection

    def batch(self) -> RespBatch:
        return RespBatch(self)

    async def execute(self, packed: list[bytes]) -> list[Any]:
        """One reply per packed command; raises the first error reply after reading all, or a
        ``ConnectionError``/``TimeoutError`` (redis-py's) after closing the connection."""
        if not packed:
            return []
        async with self._lock:
            replies = await self._exchange(b"".join(packed), len(packed))
        raise_first_error(packed, replies)
        return replies

    async def aclose(self) -> None:
        self._drop()

    async def _exchange(self, payload: bytes, count: int) -> list[Any]:
        try:
            async with asyncio.timeout(self._endpoint.timeout):
                connection = await self._connected()
                return await connection.exchange(payload, count)
        except TimeoutError as exc:
            self._drop()
            raise RedisTimeoutError("Timeout reading from Redis") from exc
        except OSError as exc:
            self._drop()
            raise RedisConnectionError(f"Error talking to Redis: {exc}") from exc
        except BaseException:  # cancelled, lost, unreadable or refused setup: never reuse it
            self._drop()
            raise

    async def _connected(self) -> _Replies:
        """The open connection, or a new one (also after the event loop changed)."""
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None and not connection.closed and connection.loop is loop:
            return connection
        self._drop()
        connection = self._connection = await self._open(loop)
        setup = [hiredis.pack_command(command) for command in self._endpoint.setup]
        if setup:
            raise_first_error(setup, await connection.exchange(b"".join(setup), len(setup)))
        return connection

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Replies:
        end = self._endpoint
        protocol = _Replies(loop)
        async with asyncio.timeout(end.connect_timeout):
            if end.path is not None:
                await loop.create_unix_connection(lambda: protocol, end.path)
            else:
                await loop.create_connection(lambda: protocol, end.host, end.port)
        return protocol

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()


class RespBatch:
    """Commands for one round trip of a ``RespPipe``: the part of redis-py's ``Pipeline`` API
    the store's batch code uses (``execute_command``, ``sadd``, ``len``, ``execute``)."""

    __slots__ = ("_packed", "_pipe")

    def __init__(self, pipe: RespPipe) -> None:
        self._pipe = pipe
        self._packed: list[bytes] = []

    def execute_command(self, *args: Any) -> None:
        self._packed.append(hiredis.pack_command(args))

    def sadd(self, name: str, *values: Any) -> None:
        self._packed.append(hiredis.pack_command(("SADD", name, *values)))

    def __len__(self) -> int:
        return len(self._packed)

    async def execute(self) -> list[Any]:
        return await self._pipe.execute(self._packed)
