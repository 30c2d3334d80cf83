"""A TCP proxy in front of a real registry that breaks one upload on purpose.

`cut_patch=n` closes the connection carrying the n-th PATCH request before
forwarding any of it (the registry never sees that PATCH: a resumable break);
`cut_patch_after=k` forwards k bytes of that PATCH first (the registry writes
part of a chunk, as when a link drops in the middle of a body). Everything
else passes through untouched, so upload Locations point back through it.
"""

from __future__ import annotations

import socket

from .tcpproxy import Relay, TcpProxy


class CuttingProxy(TcpProxy):
    name = "cutting"

    def __init__(self, upstream_port: int, *, cut_patch: int, cut_patch_after: int = 0) -> None:
        super().__init__(upstream_port)
        self.cut_patch = cut_patch
        self.cut_after = cut_patch_after
        self.patches = 0
        self.cuts = 0

    def _relay(self, from_client: bool) -> Relay:
        budget: int | None = None  # bytes of the doomed PATCH still to forward

        def relay(data: bytes, sink: socket.socket) -> bool:
            nonlocal budget
            if from_client and budget is None and data.startswith(b"PATCH "):
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
                    return False
                return True
            sink.sendall(data)
            return True

        return relay
