"""Test helpers: a TCP proxy whose connections can be cut, a thread that
collects events, waiting for a condition."""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Callable, Iterable, TypeVar

from synod import Event

T = TypeVar("T")


class Proxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`cut` drops every open
    connection in both directions, as a failing network would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.cuts = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> int:
        """Drops every open connection; returns how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cuts += 1
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


class Collector:
    """Iterates an event stream in a thread and hands events over a queue."""

    def __init__(self, stream: Iterable[Event]) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: Iterable[Event]) -> None:
        try:
            for event in stream:
                self.events.put(event)
        except BaseException as e:  # surfaced by take()
            self.error = e

    def take(self, n: int, timeout: float = 20.0) -> list[Event]:
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"only {len(out)} of {n} events within {timeout}s (error: {self.error!r})")
            try:
                out.append(self.events.get(timeout=min(left, 0.2)))
            except queue.Empty:
                if self.error is not None:
                    raise AssertionError(f"the stream failed: {self.error!r}") from self.error
        return out

    def none_pending(self, wait: float = 0.5) -> bool:
        try:
            self.events.get(timeout=wait)
        except queue.Empty:
            return True
        return False


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def expected_events(log: Iterable[dict]) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """(id, type) of every event the log's effects give, in order."""
    return [(f"{line['index']}.{k}", effect["type"]) for line in log for k, effect in enumerate(line["effects"])]
