"""Celery workers of this project's app, in their own process groups."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .processes import process_cpu_seconds, stop_process

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path
    log_start: int = 0  # the log's size when this worker started: older lines are an earlier run's

    def stop(self, *, timeout: float = 20) -> None:
        stop_process(self.process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ready_wait(self, *, deadline: float) -> None:
        """Until the worker logs "ready." (time.monotonic() `deadline`); its log's tail in the error."""
        while True:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_start)
                if b"ready." in handle.read():
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"celery worker not ready:\n{self.log()[-3000:]}")
            time.sleep(0.2)

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
        return sum(process_cpu_seconds(pid) for pid in self.processes())


def worker_start(folder: Path, env: dict[str, str], *, name: str = "w1", concurrency: int = 2,
                 queues: str = "celery", log_path: Path | None = None, wait: bool = True) -> Worker:
    """`celery -A config worker` on the Redis and database `env` names (over os.environ).

    Its log is folder/worker-`name`.log unless `log_path` says; `wait` returns once it is ready
    (else call Worker.ready_wait, e.g. after starting several).
    """
    folder.mkdir(parents=True, exist_ok=True)
    log_path = log_path or folder / f"worker-{name}.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    process = subprocess.Popen(
        [celery, "-A", "config", "worker", "-l", "INFO", "-c", str(concurrency), "-n", f"{name}@%h",
         "-Q", queues, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    worker = Worker(process, log_path, log_start)
    if wait:
        worker.ready_wait(deadline=time.monotonic() + 60)
    return worker
