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

from .tcpproxy import Relay, TcpProxy

_METHODS = (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"PATCH ", b"DELETE ")


class ThrottledProxy(TcpProxy):
    name = "throttle"

    def __init__(self, upstream_port: int, *, bytes_per_second: int, cut_after: bytes | None = None,
                 cut_after_requests: int | None = None) -> None:
        super().__init__(upstream_port)
        self.rate = bytes_per_second
        self.cut_after = cut_after
        self.cut_after_requests = cut_after_requests
        self.cut = threading.Event()
        self.requests: list[bytes] = []  # request lines forwarded
        self.refused: list[bytes] = []  # request lines met after the cut, never forwarded

    def _admit(self, client: socket.socket) -> bool:
        return not self.cut.is_set()  # stopped: the client sees its connection closed

    def _request_line(self, data: bytes) -> bytes:
        """The request line when `data` starts a request (clients send the next request only after an answer)."""
        return data.split(b"\r\n", 1)[0] if data.startswith(_METHODS) else b""

    def _relay(self, from_client: bool) -> Relay:
        def relay(data: bytes, sink: socket.socket) -> bool:
            line = self._request_line(data) if from_client else b""
            if line and self.cut.is_set():
                with self._lock:
                    self.refused.append(line)
                return False
            sink.sendall(data)
            if line:
                with self._lock:
                    self.requests.append(line)
                    count = len(self.requests)
                if ((self.cut_after is not None and self.cut_after in line)
                        or (self.cut_after_requests is not None and count >= self.cut_after_requests)):
                    self.cut.set()
            time.sleep(len(data) / self.rate)
            return True

        return relay
