"""The request floor: the fewest requests a scan can make, sent through plain `requests`.

This is the one place outside registry/ that speaks to a registry with
`requests` directly, on purpose: it is the yardstick the client is measured
against, so it must not share the client's code. It does what any scanner
must and nothing else: no retries, no auth, no digest verification, no
database; one session with connection reuse and the same number of threads
as the scan.

- cold: catalog pages, every tags list, one GET per tag (its digest is in the
  answer), then one GET per child manifest and per image config never seen
  before (each digest once, across repositories: content never changes).
  Children come after every tag is read, so a child that is tagged too is
  fetched once, by its tag.
- warm: catalog pages, every tags list, one HEAD per tag; a GET only for a
  digest never seen (none, when tags moved to manifests already known).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
USER_AGENT = "bench-floor/1.0"
PAGE_SIZE = 1000


@dataclass
class FloorState:
    """What a previous floor run learned: tag -> digest, and every digest fetched."""

    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)


@dataclass
class FloorResult:
    mode: str
    seconds: float
    requests: dict[str, int]
    tags: int
    changed: int
    errors: int

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class _Floor:
    def __init__(self, url: str, concurrency: int, state: FloorState) -> None:
        self.base = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max(4, concurrency * 2))
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.concurrency = concurrency
        self.state = state
        self.counters: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.errors = 0
        self.changed = 0
        self.deferred: list[tuple[str, dict]] = []  # (repository, index) whose children wait for every tag

    def _get(self, path: str, op: str, *, method: str = "GET", accept: str = "") -> requests.Response:
        with self.lock:
            self.counters[op] += 1
        headers = {"Accept": accept} if accept else None
        response = self.session.request(method, urljoin(self.base + "/", path.lstrip("/")), headers=headers,
                                        timeout=30, allow_redirects=False)
        response.raise_for_status()
        return response

    def _claim(self, digest: str) -> bool:
        with self.lock:
            if digest in self.state.known:
                return False
            self.state.known.add(digest)
            return True

    def _pages(self, path: str, key: str, op: str) -> list[str]:
        """Follow Link rel=next only: a registry that sends none has sent everything (the spec's way)."""
        url: str | None = f"{path}?n={PAGE_SIZE}"
        items: list[str] = []
        while url:
            response = self._get(url, op)
            items += response.json().get(key) or []
            link = response.headers.get("Link", "")
            url = link[link.find("<") + 1:link.find(">")] if 'rel="next"' in link else None
        return items

    def _learn(self, repo: str, raw: bytes, media_type: str, *, top: bool = False) -> None:
        data = json.loads(raw)
        media_type = data.get("mediaType") or media_type
        if media_type in INDEX_TYPES or "manifests" in data:
            if top:  # children wait until every tag is read: a tagged child is then known
                with self.lock:
                    self.deferred.append((repo, data))
                return
            self._children(repo, data)
            return
        config = data.get("config") or {}
        if config.get("mediaType") in ("application/vnd.oci.image.config.v1+json",
                                       "application/vnd.docker.container.image.v1+json"):
            if self._claim(config["digest"]):
                json.loads(self._get(f"/v2/{repo}/blobs/{config['digest']}", "GET blob").content)

    def _children(self, repo: str, data: dict) -> None:
        for child in data.get("manifests", []):
            if self._claim(child["digest"]):
                response = self._get(f"/v2/{repo}/manifests/{child['digest']}", "GET manifest", accept=ACCEPT)
                self._learn(repo, response.content, response.headers.get("Content-Type", ""))

    def _deferred_children(self, repo: str, data: dict) -> None:
        try:
            self._children(repo, data)
        except (requests.RequestException, ValueError, KeyError):
            with self.lock:
                self.errors += 1

    def _tag(self, repo: str, tag: str) -> None:
        try:
            stored = self.state.tags.get((repo, tag))
            if stored:
                head = self._get(f"/v2/{repo}/manifests/{tag}", "HEAD manifest", method="HEAD", accept=ACCEPT)
                digest = head.headers["Docker-Content-Digest"]
                if digest == stored:
                    return
                with self.lock:
                    self.changed += 1
                    self.state.tags[(repo, tag)] = digest
                if not self._claim(digest):
                    return
                response = self._get(f"/v2/{repo}/manifests/{digest}", "GET manifest", accept=ACCEPT)
            else:
                response = self._get(f"/v2/{repo}/manifests/{tag}", "GET manifest", accept=ACCEPT)
                digest = response.headers["Docker-Content-Digest"]
                with self.lock:
                    self.changed += 1
                    self.state.tags[(repo, tag)] = digest
                if not self._claim(digest):
                    return
            self._learn(repo, response.content, response.headers.get("Content-Type", ""), top=True)
        except (requests.RequestException, ValueError, KeyError):
            with self.lock:
                self.errors += 1

    def run(self) -> tuple[int, float]:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            repositories = self._pages("/v2/_catalog", "repositories", "GET catalog")
            tag_lists = list(pool.map(lambda r: self._pages(f"/v2/{r}/tags/list", "tags", "GET tags"),
                                      repositories))
            jobs = [(repo, tag) for repo, tags in zip(repositories, tag_lists, strict=True) for tag in tags]
            list(pool.map(lambda job: self._tag(*job), jobs))
            list(pool.map(lambda item: self._deferred_children(*item), self.deferred))
        return len(jobs), time.monotonic() - started


def floor_scan(url: str, *, concurrency: int, state: FloorState) -> FloorResult:
    """One pass: cold for tags the state does not hold, warm for those it does."""
    mode = "warm" if state.tags else "cold"
    floor = _Floor(url, concurrency, state)
    try:
        tags, seconds = floor.run()
    finally:
        floor.session.close()
    return FloorResult(mode=mode, seconds=seconds, requests=dict(floor.counters), tags=tags,
                       changed=floor.changed, errors=floor.errors)
