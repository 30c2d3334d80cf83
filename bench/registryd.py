"""A Docker Distribution for the benchmark, and its access log read back by kind.

Distribution writes one Apache "combined" line per request on stdout when
`log.accesslog` is enabled; we keep stdout in a file and read it between byte
offsets (marks), so every phase's requests can be counted independently of the
client's own counters.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from manifests.stack.distribution import RunningRegistry
from manifests.stack.ports import free_port
from manifests.stack.processes import process_cpu_seconds

# 127.0.0.1 - - [28/Nov/2026:05:54:11 +0000] "GET /v2/a/b/tags/list?n=1000 HTTP/1.1" 200 6922 "" "ua"
_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) \S+ '
                   r'"[^"]*" "(?P<agent>[^"]*)"')
_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/?]+)$")
_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<ref>sha256:[0-9a-f]{64})$")


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


class Distribution(RunningRegistry):
    """A Distribution (anonymous, logging at warn) with its access log read back."""

    def __init__(self, folder: Path) -> None:
        super().__init__(mode="anonymous", port=free_port(), folder=folder, log_level="warn")

    def start(self) -> Distribution:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().start()
        return self

    def version(self) -> str:
        try:
            out = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
            return out.stdout.strip().split()[-1] if out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time the registry process has used so far."""
        return process_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def repository_copy(self, source: str, target: str) -> None:
        """`target` as a copy of `source` in the storage: its folder holds link files naming digests (tags,
        revisions, layers), the same files a push of the same manifests and tags to `target` writes."""
        root = self.data_dir / "docker" / "registry" / "v2" / "repositories"
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(root / source), str(root / target)], check=True)

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
