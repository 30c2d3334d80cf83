"""Celery workers for the scale-out measurement: the production path of a registry scan."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.services import stop_process

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def processes(self) -> list[int]:
        """The worker's main process and its pool children."""
        pids = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            pids += [int(pid) for pid in children]
        except OSError:
            pass
        return pids

    def peak_rss_mib(self) -> float:
        """The largest VmHWM (peak resident set) among the worker's processes: the pool child scans."""
        peak = 0.0
        for pid in self.processes():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
            except (OSError, ValueError, IndexError):
                continue
        return peak

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the worker's processes so far (the pool child does the scanning)."""
        total = 0.0
        for pid in self.processes():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
        return total

    def stop(self) -> None:
        stop_process(self.process, timeout=30)


def workers_start(folder: Path, env: dict[str, str], *, count: int, concurrency: int = 1) -> list[Worker]:
    """`count` workers of `concurrency` pool processes each, on the Redis and database that `env` names."""
    folder.mkdir(parents=True, exist_ok=True)
    celery = str(Path(sys.executable).parent / "celery")
    workers = []
    for index in range(count):
        log_path = folder / f"worker-{count}-{index}.log"
        log_path.unlink(missing_ok=True)
        process = subprocess.Popen(
            [celery, "-A", "config", "worker", "-l", "INFO", "-c", str(concurrency), "-n", f"bench{index}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        workers.append(Worker(process, log_path))
    deadline = time.monotonic() + 90
    for worker in workers:
        while "ready." not in worker.log_path.read_text(errors="replace"):
            if worker.process.poll() is not None or time.monotonic() > deadline:
                log = worker.log_path.read_text(errors="replace")[-3000:]
                for other in workers:
                    other.stop()
                raise RuntimeError(f"celery worker did not start:\n{log}")
            time.sleep(0.2)
    return workers
