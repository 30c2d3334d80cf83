"""Page latency under load, against the production server (gunicorn), logged in.

The load generator speaks HTTP to our own web server, not to a registry, so
it uses `requests` like a browser would.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from manifests.stack.ports import free_port, wait_for_port
from manifests.stack.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process, timeout=20)


def gunicorn_start(folder: Path, env: dict[str, str], *, workers: int = 2) -> Server:
    port = free_port()
    log_path = folder / "gunicorn.log"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    process = subprocess.Popen(
        [gunicorn, "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    wait_for_port(port, process=process, timeout=60)
    server = Server(process, port, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"gunicorn did not answer /healthz:\n{log_path.read_text()[-2000:]}")


def login(base: str, username: str, password: str) -> requests.Session:
    """Log in through /login/ as a browser does: CSRF cookie and form token, then the session cookie."""
    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{base}/login/", timeout=10)
    page.raise_for_status()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if match is None:
        raise RuntimeError("no CSRF token on the login page")
    response = session.post(f"{base}/login/", data={"username": username, "password": password,
                                                    "csrfmiddlewaretoken": match[1]},
                            headers={"Referer": f"{base}/login/"}, timeout=10, allow_redirects=False)
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")
    return session


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def page_load(base: str, cookies: dict, *, path: str, clients: int, requests_total: int,
              max_seconds: float, warmup: int = 3) -> dict:
    """`clients` threads with their own keep-alive session, `requests_total` GETs or `max_seconds` at most."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    lock = threading.Lock()
    firsts: list[float] = []  # each client's first request, before any is measured (a fresh worker's view)
    budget = [requests_total]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        session = requests.Session()
        session.trust_env = False
        session.cookies.update(cookies)
        for number in range(warmup):
            started = time.perf_counter()
            session.get(base + path, timeout=60)
            if number == 0:
                with lock:
                    firsts.append(time.perf_counter() - started)
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            started = time.perf_counter()
            response = session.get(base + path, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                sizes.append(len(response.content))
        session.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda _: worker(), range(clients)))
    wall = time.monotonic() - started
    return {
        "path": path, "clients": clients, "requests": len(latencies), "statuses": statuses,
        "p50_ms": 1000 * _percentile(latencies, 0.5), "p95_ms": 1000 * _percentile(latencies, 0.95),
        "max_ms": 1000 * max(latencies, default=0.0), "mean_ms": 1000 * statistics.fmean(latencies or [0.0]),
        "throughput_rps": len(latencies) / wall if wall else 0.0, "bytes": int(statistics.median(sizes or [0])),
        "first_ms": 1000 * max(firsts, default=0.0),
    }
