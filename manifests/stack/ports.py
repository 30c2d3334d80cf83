"""Free loopback ports, and waiting for a service to listen on one."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

_random = random.Random()  # its own: tests may seed the global one


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port that nothing listens on, outside the kernel's ephemeral range.

    Services are stopped and started again on the same port; a port from the
    ephemeral range could meanwhile become the local end of some outgoing
    connection (the worker's retries, the proxy's upstream connections).
    """
    low, high = _ephemeral_range()
    candidates = [p for p in range(20000, 32768) if not low <= p <= high] or list(range(high + 1, 65536))
    for port in _random.sample(candidates, min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_listening(port: int, *, timeout: float = 0.2) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, *, timeout: float = 15.0, process=None) -> None:
    """Until 127.0.0.1:`port` accepts connections; RuntimeError if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        if port_listening(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
