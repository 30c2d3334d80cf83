"""A TCP proxy that slows a real registry down to a set rate.

Tests that kill a process or stop the registry in the middle of a push need
the push to last long enough to be interrupted, whatever the machine's speed.
The proxy forwards bytes untouched (Host headers included, so the registry's
upload Locations point back through it); it only paces them, so the time a
push takes is fixed by the rate and the bytes, not by the CPU.

It can also stop the registry, as its clients see it, at a chosen point:
after the request whose request line contains `cut_after` (the registry's
answer to that request still comes through), or after `cut_after_requests`
requests. From then on every new request, on a kept-alive connection or a
new one, finds its connection closed, as when the registry's process stops.
"""

from __future__ import annotations

import socket
import threading
import time

from .ports import free_port

CHUNK = 64 * 1024
_METHODS = (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"PATCH ", b"DELETE ")


class ThrottledProxy:
    def __init__(self, upstream_port: int, *, bytes_per_second: int, cut_after: bytes | None = None,
                 cut_after_requests: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.rate = bytes_per_second
        self.cut_after = cut_after
        self.cut_after_requests = cut_after_requests
        self.cut = threading.Event()
        self.requests: list[bytes] = []  # request lines forwarded
        self.refused: list[bytes] = []  # request lines met after the cut, never forwarded
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"throttle-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThrottledProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.cut.is_set():
                _close(client)  # stopped: the client sees its connection closed
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _close(client)  # the registry is down: the client sees its connection closed
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _request_line(self, data: bytes) -> bytes:
        """The request line when `data` starts a request (clients send the next request only after an answer)."""
        return data.split(b"\r\n", 1)[0] if data.startswith(_METHODS) else b""

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                line = self._request_line(data) if from_client else b""
                if line and self.cut.is_set():
                    with self._lock:
                        self.refused.append(line)
                    break
                sink.sendall(data)
                if line:
                    with self._lock:
                        self.requests.append(line)
                        count = len(self.requests)
                    if ((self.cut_after is not None and self.cut_after in line)
                            or (self.cut_after_requests is not None and count >= self.cut_after_requests)):
                        self.cut.set()
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            # One side ended: end both, as a dropped connection would.
            for sock in (source, sink):
                _close(sock)
            with self._lock:
                self._sockets.difference_update((source, sink))


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
