"""The skeleton of the tests' TCP proxies in front of a real registry.

A listener on a free loopback port; each connection gets one to the
upstream port and two pumping threads, one a direction. Subclasses decide
what each direction does with the bytes it reads (`_relay`), and whether a
new connection is let through at all (`_admit`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from manifests.stack.ports import free_port

CHUNK = 64 * 1024

# Forwards (or not) one read to the sink; False ends the connection.
Relay = Callable[[bytes, socket.socket], bool]


def sock_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class TcpProxy:
    name = "proxy"

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"{self.name}-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock_close(sock)

    def _admit(self, client: socket.socket) -> bool:
        return True

    def _relay(self, from_client: bool) -> Relay:
        """What one direction of one connection does with each read."""
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._admit(client):
                sock_close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                sock_close(client)  # the registry is down: the client sees its connection closed
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        relay = self._relay(from_client)
        try:
            while True:
                data = source.recv(CHUNK)
                if not data or not relay(data, sink):
                    break
        except OSError:
            pass
        finally:
            # One side ended: end both, as a dropped connection would.
            for sock in (source, sink):
                sock_close(sock)
            with self._lock:
                self._sockets.difference_update((source, sink))
