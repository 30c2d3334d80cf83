"""A TCP proxy in front of a real registry that breaks one upload on purpose.

`cut_patch=n` closes the connection carrying the n-th PATCH request before
forwarding any of it (the registry never sees that PATCH: a resumable break);
`cut_patch_after=k` forwards k bytes of that PATCH first (the registry writes
part of a chunk, as when a link drops in the middle of a body). Everything
else passes through untouched, so upload Locations point back through it.
"""

from __future__ import annotations

import socket
import threading

from .ports import free_port

CHUNK = 64 * 1024


class CuttingProxy:
    def __init__(self, upstream_port: int, *, cut_patch: int, cut_patch_after: int = 0) -> None:
        self.upstream_port = upstream_port
        self.cut_patch = cut_patch
        self.cut_after = cut_patch_after
        self.port = free_port()
        self.patches = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"cutting-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CuttingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            upstream.settimeout(None)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        budget: int | None = None  # bytes of the doomed PATCH still to forward
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if outbound and budget is None and data.startswith(b"PATCH "):
                    with self._lock:
                        self.patches += 1
                        doomed = self.patches == self.cut_patch
                    if doomed:
                        budget = self.cut_after
                if budget is not None:
                    sink.sendall(data[:budget])
                    budget -= min(budget, len(data))
                    if budget == 0:
                        self.cuts += 1
                        break
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
