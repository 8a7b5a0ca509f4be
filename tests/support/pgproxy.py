"""A TCP proxy in front of a real PostgreSQL that can lose one COMMIT's answer.

The hardest database fault for a client is the ambiguous commit: the server committed, but
the connection broke before the answer came back, so the client sees an error for work that
was done. This proxy forwards the PostgreSQL protocol both ways unchanged and, once armed
with a marker (bytes the client sends, e.g. an event topic in a Bind or Query message),
closes the first connection that sent the marker at the moment the server says the
transaction is over (``ReadyForQuery`` with status idle: after an explicit COMMIT, or after
the implicit transaction of a many-statement simple query), without passing that on. The
transaction stays committed.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from types import TracebackType

# SSLRequest and GSSENCRequest: the proxy answers them itself with "N" (no encryption), so
# the protocol stays readable.
_ENCRYPTION_REQUESTS = {
    struct.pack("!II", 8, 80877103),
    struct.pack("!II", 8, 80877104),
}
# ReadyForQuery, status idle: whatever the client sent before it is committed.
_IDLE = b"Z" + struct.pack("!I", 5) + b"I"


class CommitLosingProxy:
    """``with CommitLosingProxy(port) as proxy``: connect to ``proxy.port`` instead."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.commits_lost = 0
        self._closing = False
        self._thread = threading.Thread(target=self._accept, name="pgproxy", daemon=True)

    def __enter__(self) -> CommitLosingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closing = True
        self._listener.close()

    def lose_next_commit_after(self, marker: bytes) -> None:
        """Lose the end of the next transaction on a connection that sent ``marker``."""
        with self._lock:
            self._marker = marker

    def _take_marker(self, sent: bytes) -> bool:
        with self._lock:
            if self._marker is not None and self._marker in sent:
                self._marker = None
                return True
            return False

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        marked = False
        answers = _ServerMessages()
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ)
        selector.register(server, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    if key.fileobj is client:
                        if data in _ENCRYPTION_REQUESTS:
                            client.sendall(b"N")
                            continue
                        marked = marked or self._take_marker(data)
                        server.sendall(data)
                        continue
                    forward, lost = answers.feed(data, stop_at_commit=marked)
                    client.sendall(forward)
                    if lost:
                        self.commits_lost += 1
                        return
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            server.close()


class _ServerMessages:
    """Splits the server's byte stream into protocol messages, to find a transaction's end."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, *, stop_at_commit: bool) -> tuple[bytes, bool]:
        """The bytes to forward now, and whether a transaction's end was held back (the end)."""
        self._buffer += data
        forward = bytearray()
        while self._buffer:
            if len(self._buffer) < 5:
                break
            length = struct.unpack("!I", self._buffer[1:5])[0]
            if len(self._buffer) < 1 + length:
                break
            message, self._buffer = self._buffer[: 1 + length], self._buffer[1 + length :]
            if stop_at_commit and message == _IDLE:
                return bytes(forward), True
            forward += message
        return bytes(forward), False
