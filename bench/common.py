"""What the benchmark's phases share: the log, the Django subprocess runner, the checks."""

from __future__ import annotations

import json
import os
import platform as platform_module
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import generate

ROOT = Path(__file__).resolve().parents[1]
OURS_AGENT = "manifest-dashboard/"
FLOOR_AGENT = "bench-floor/"
REGISTRY_NAME = "bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Django:
    """Runs bench.inproc commands in subprocesses against one SQLite file."""

    def __init__(self, db: Path, base_env: dict[str, str]) -> None:
        self.db = db
        self.env = {**os.environ, **base_env, "DATABASE_URL": f"sqlite:///{db}"}

    def run(self, *args: str) -> dict:
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "bench.inproc", *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"bench.inproc {args[0]} failed ({out.returncode}):\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["process_seconds"] = time.monotonic() - started
        return result

    def copy(self, path: Path) -> Django:
        shutil.copyfile(self.db, path)
        return Django(path, {k: v for k, v in self.env.items() if k != "DATABASE_URL"})


def tags_check(plan: generate.Plan, stored: dict[str, str]) -> dict:
    expected = {f"{r.name}:{t}": d for r in plan.repositories for t, d in r.tags.items()}
    wrong = [k for k, d in expected.items() if stored.get(k) not in (d,)]
    extra = [k for k in stored if k not in expected]
    return {"expected": len(expected), "stored": len(stored), "wrong_or_missing": len(wrong), "extra": len(extra),
            "examples": (wrong + extra)[:5]}


def log_summary(count) -> dict:
    return {"requests": dict(count.kinds), "total": count.total, "statuses": dict(count.statuses),
            "repeated_digest_gets": dict(count.repeated_digest_gets), "repeated_examples": count.repeated_examples,
            "repeated_top": count.repeated_by_digest.most_common(5),
            "repeated_distinct": len(count.repeated_by_digest)}


def self_cpu() -> float:
    """This process's CPU time: the floor runs in it, and nothing else does meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "kernel": platform_module.release(),
            "python": platform_module.python_version(), "loadavg_at_start": [round(x, 2) for x in load],
            "commit": commit + ("+dirty" if dirty else "")}


def children_cpu() -> float:
    """CPU time of this process's finished children (the CLI tools, each one process per tag)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def postgres_django(cluster, database: str, base_env: dict[str, str]) -> Django:
    cluster._create_database(database)
    django = Django.__new__(Django)
    django.db = None
    django.env = {**os.environ, **base_env, "DATABASE_URL": cluster.url(database)}
    return django
