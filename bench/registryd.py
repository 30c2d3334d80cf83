"""A Docker Distribution for the benchmark, and its access log read back by kind.

Distribution writes one Apache "combined" line per request on stdout when
`log.accesslog` is enabled; we keep stdout in a file and read it between byte
offsets (marks), so every phase's requests can be counted independently of the
client's own counters.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# 127.0.0.1 - - [28/Nov/2026:05:54:11 +0000] "GET /v2/a/b/tags/list?n=1000 HTTP/1.1" 200 6922 "" "ua"
_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) \S+ '
                   r'"[^"]*" "(?P<agent>[^"]*)"')
_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/?]+)$")
_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<ref>sha256:[0-9a-f]{64})$")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request_kind(method: str, path: str) -> str:
    """The client's counter name for a request line ("GET manifest", "HEAD blob", ...)."""
    path = path.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        return f"{method} ping"
    if path == "/v2/_catalog":
        return f"{method} catalog"
    if path.endswith("/tags/list"):
        return f"{method} tags"
    if _MANIFEST.match(path):
        return f"{method} manifest"
    if path.rstrip("/").endswith("/blobs/uploads") or "/blobs/uploads/" in path:
        return "POST upload" if method == "POST" else f"{method} blob"
    if _BLOB.match(path):
        return f"{method} blob"
    return f"{method} other"


@dataclass
class LogCount:
    """Requests seen in the access log between two marks, for one user agent."""

    kinds: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    # GETs of a digest fetched before in the same window (manifests by digest, blobs).
    repeated_digest_gets: Counter = field(default_factory=Counter)
    repeated_examples: list[str] = field(default_factory=list)
    repeated_by_digest: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@dataclass
class Distribution:
    folder: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "registry.log"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def start(self) -> Distribution:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.port = self.port or free_port()
        config = self.folder / "config.yml"
        # level warn keeps Distribution's own per-request lines out of the log:
        # only the access log (one line per request) and real warnings remain.
        config.write_text("\n".join([
            "version: 0.1",
            "log:",
            "  level: warn",
            "  formatter: text",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.data_dir}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: bench-registry-secret",
        ]) + "\n")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def version(self) -> str:
        try:
            out = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
            return out.stdout.strip().split()[-1] if out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time the registry process has used so far."""
        if self.process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def mark(self) -> int:
        """A position in the access log; Go writes os.Stdout unbuffered, so it is current."""
        return self.log_path.stat().st_size

    def count(self, start: int, end: int | None = None, *, agent: str = "") -> LogCount:
        """Requests between two marks whose user agent starts with `agent`."""
        result = LogCount()
        seen: set[str] = set()
        with self.log_path.open("rb") as handle:
            handle.seek(start)
            data = handle.read((end - start) if end is not None else -1)
        for raw in data.decode("utf-8", errors="replace").splitlines():
            match = _LINE.match(raw)
            if match is None or not match["agent"].startswith(agent):
                continue
            method, path = match["method"], match["path"]
            kind = request_kind(method, path)
            result.kinds[kind] += 1
            result.statuses[match["status"]] += 1
            if method != "GET":
                continue
            target = _MANIFEST.match(path.split("?", 1)[0]) or _BLOB.match(path.split("?", 1)[0])
            if target is None or not target["ref"].startswith("sha256:"):
                continue
            key = f"{kind} {target['ref']}"
            if key in seen:
                result.repeated_digest_gets[kind] += 1
                result.repeated_by_digest[target["ref"]] += 1
                if len(result.repeated_examples) < 5:
                    result.repeated_examples.append(f"{method} {path}")
            seen.add(key)
        return result
