"""``GET /v1/events``: Server-Sent Events that survive dropped connections.

The node sends one event per effect of each log entry, with id ``INDEX.K``
(the entry's index and the effect's place in it) and the effect's type as
the event name. A stream that loses its connection reconnects with
``Last-Event-ID`` set to the last event it yielded, so the node resumes
exactly after it; events at or before that position are dropped should they
come again, so none is yielded twice.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncGenerator, Generator

import anyio
import httpx

from ._base import error_of

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client

__all__ = ["Event", "EventStream", "AsyncEventStream", "SSEDecoder", "parse_position"]


def parse_position(event_id: str) -> tuple[int, int] | None:
    """``"12.3"`` → ``(12, 3)``; None for an id of another form."""
    index, dot, k = event_id.partition(".")
    if not dot or not index.isdigit() or not k.isdigit():
        return None
    return int(index), int(k)


@dataclass(frozen=True)
class Event:
    """One effect of one log entry (docs/PROTOCOL.md §10.1)."""

    #: ``INDEX.K``.
    id: str
    #: The effect type: ``proposal_opened``, ``response_counted``, …
    type: str
    #: The effect, with ``index``, ``time`` and, for ``response_counted``,
    #: ``proposal_closed`` and ``human_resolved``, ``final``.
    data: dict[str, Any] = field(hash=False)

    @property
    def position(self) -> tuple[int, int] | None:
        return parse_position(self.id)

    @property
    def index(self) -> int | None:
        """The log index of the entry."""
        position = self.position
        return position[0] if position else None


class SSEDecoder:
    """Turns the lines of an event stream into events (the WHATWG rules:
    comments, ``field: value``, the last event id persisting between events,
    dispatch on a blank line)."""

    def __init__(self) -> None:
        self._id = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            text = "\n".join(self._data)
            name = self._event or "message"
            self._data = []
            self._event = ""
            try:
                value = json.loads(text)
            except ValueError:
                value = {"raw": text}
            data = value if isinstance(value, dict) else {"value": value}
            return Event(id=self._id, type=name, data=data)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def _shutdown(response: httpx.Response | None) -> None:
    """Shuts the response's socket so that a read blocked in another thread
    returns at once (closing alone does not wake it)."""
    if response is None:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    # A socket.socket, or asyncio's TransportSocket wrapping one.
    shutdown = getattr(sock, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _StreamState:
    """Position bookkeeping shared by the sync and async streams."""

    def __init__(
        self,
        from_index: int | None,
        last_event_id: str | None,
        reconnect: bool,
        max_reconnects: int | None,
        read_timeout: float,
        retry_initial: float,
        retry_max: float,
    ) -> None:
        #: The id of the last event yielded: where a reconnection resumes.
        self.last_event_id = last_event_id
        self._position = parse_position(last_event_id) if last_event_id else None
        self._from = from_index
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        #: How many times the stream connected (1 without any drop).
        self.connections = 0
        #: How many times it reconnected after a drop or an end.
        self.reconnects = 0
        # Reconnections since the last event: what max_reconnects bounds.
        self.failures = 0
        self.closed = False
        self.timeout = httpx.Timeout(30.0, read=read_timeout)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.delay = retry_initial
        self.response: httpx.Response | None = None
        # Whether a next()/anext() is under way (perhaps in another thread or task).
        self._busy = False

    def request(self) -> tuple[dict[str, str], dict[str, Any]]:
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        query: dict[str, Any] = {}
        if self.last_event_id:
            headers["last-event-id"] = self.last_event_id
        else:
            query["from"] = self._from
        return headers, query

    def needs_start(self) -> bool:
        return not self.last_event_id and self._from is None

    def set_start(self, index: int) -> None:
        self._from = index

    def accept(self, event: Event) -> bool:
        """Whether to yield ``event``; records it as the resume point."""
        self.delay = self.retry_initial
        self.failures = 0
        position = event.position
        if position is not None:
            if self._position is not None and position <= self._position:
                return False
            self._position = position
            self.last_event_id = event.id
        return True

    def may_retry(self) -> bool:
        return self.reconnect and not self.closed and (
            self.max_reconnects is None or self.failures < self.max_reconnects
        )

    def next_delay(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.retry_max)
        return delay


_RETRYABLE = (httpx.TransportError, httpx.StreamError)


class EventStream(_StreamState):
    """A blocking iterator of :class:`Event` (``Client.events()``).

    It never ends by itself while ``reconnect`` holds: it retries with
    backoff (``max_reconnects`` bounds the retries in a row). ``close()``
    ends it, also from another thread.
    """

    def __init__(
        self,
        client: Client,
        *,
        from_index: int | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        super().__init__(from_index, last_event_id, reconnect, max_reconnects, read_timeout, retry_initial, retry_max)
        self._client = client
        self._gen = self._run()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        self._busy = True
        try:
            return next(self._gen)
        finally:
            self._busy = False

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        _shutdown(self.response)
        if not self._busy:  # else another thread iterates: it stops at the shut socket
            try:
                self._gen.close()
            except ValueError:
                pass

    def _run(self) -> Generator[Event, None, None]:
        first = True
        while not self.closed:
            if not first:
                if not self.may_retry():
                    return
                time.sleep(self.next_delay())
                if self.closed:
                    return
                self.reconnects += 1
                self.failures += 1
            first = False
            try:
                if self.needs_start():
                    self.set_start(self._client.space()["head"]["next_index"])
                headers, query = self.request()
                with self._client.http.stream(
                    "GET", "/v1/events", params=query, headers=headers, timeout=self.timeout
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = error_of(response.status_code, response.text)
                        if response.status_code == 503 and self.may_retry():
                            continue
                        raise error
                    self.response = response
                    self.connections += 1
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is not None and self.accept(event):
                            yield event
            except _RETRYABLE:
                if self.closed:
                    return
                if not self.may_retry():
                    raise
            finally:
                self.response = None


class AsyncEventStream(_StreamState):
    """An async iterator of :class:`Event` (``AsyncClient.events()``), with the
    same resumption as :class:`EventStream`. Stop it with ``aclose()`` or by
    cancelling the task that iterates."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        from_index: int | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        super().__init__(from_index, last_event_id, reconnect, max_reconnects, read_timeout, retry_initial, retry_max)
        self._client = client
        self._gen = self._run()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        self._busy = True
        try:
            return await self._gen.__anext__()
        finally:
            self._busy = False

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.closed = True
        _shutdown(self.response)
        if not self._busy:  # else another task iterates: it stops at the shut socket
            await self._gen.aclose()

    async def _run(self) -> AsyncGenerator[Event, None]:
        first = True
        while not self.closed:
            if not first:
                if not self.may_retry():
                    return
                await anyio.sleep(self.next_delay())
                if self.closed:
                    return
                self.reconnects += 1
                self.failures += 1
            first = False
            try:
                if self.needs_start():
                    self.set_start((await self._client.space())["head"]["next_index"])
                headers, query = self.request()
                async with self._client.http.stream(
                    "GET", "/v1/events", params=query, headers=headers, timeout=self.timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        error = error_of(response.status_code, response.text)
                        if response.status_code == 503 and self.may_retry():
                            continue
                        raise error
                    self.response = response
                    self.connections += 1
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is not None and self.accept(event):
                            yield event
            except _RETRYABLE:
                if self.closed:
                    return
                if not self.may_retry():
                    raise
            finally:
                self.response = None
