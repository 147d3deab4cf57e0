"""A loopback TCP proxy that can lose responses: a faulty network between SDK and server."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class FlakyProxy:
    """Forwards connections to `target`.

    While `drop_responses` > 0, it lets a request reach the server, waits for the answer, and
    cuts the connection instead of passing it on. While `refuse_with` holds statuses, it answers
    the next requests itself with them (and `Retry-After: 0`) without reaching the server.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.drop_responses = 0
        self.dropped = 0
        self.refuse_with: list[int] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._closed = False
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Stop accepting: from now on connections are refused (open ones go on)."""
        self._closed = True
        with contextlib.suppress(OSError):  # wakes the accepting thread, which close() doesn't
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def cut_all(self) -> None:
        """Cut every open connection (as a network failure would); new ones still pass."""
        with self._lock:
            open_sockets, self._open = self._open, []
        for sock in open_sockets:
            _cut(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                status = self.refuse_with.pop(0) if self.refuse_with else None
                if status is not None:
                    self.refused += 1
            if status is not None:
                threading.Thread(target=self._refuse, args=(client, status), daemon=True).start()
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, client), daemon=True).start()

    def _refuse(self, client: socket.socket, status: int) -> None:
        with contextlib.suppress(OSError):
            client.recv(65536)
            body = (
                b'{"error": {"code": "x", "message": "refused by the test proxy", "details": {}}}'
            )
            client.sendall(
                f"HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\n"
                f"Retry-After: 0\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        _cut(client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _cut(sink)

    def _answer(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    drop = self.drop_responses > 0
                    if drop:
                        self.drop_responses -= 1
                        self.dropped += 1
                if drop:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _cut(client)
            _cut(upstream)


def _cut(sock: socket.socket) -> None:
    # shutdown, unlike close, wakes a thread blocked reading the socket and sends the FIN now
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
