"""Celery workers for the scale-out measurement: the production path of a registry scan."""

from __future__ import annotations

import time
from pathlib import Path

from manifests.stack.workers import Worker, worker_start


def workers_start(folder: Path, env: dict[str, str], *, count: int, concurrency: int = 1) -> list[Worker]:
    """`count` workers of `concurrency` pool processes each, on the Redis and database that `env` names."""
    workers = []
    for index in range(count):
        log_path = folder / f"worker-{count}-{index}.log"
        log_path.unlink(missing_ok=True)
        workers.append(worker_start(folder, env, name=f"bench{index}", concurrency=concurrency,
                                    log_path=log_path, wait=False))
    deadline = time.monotonic() + 90
    try:
        for worker in workers:
            worker.ready_wait(deadline=deadline)
    except (RuntimeError, TimeoutError) as exc:
        for other in workers:
            other.stop(timeout=30)
        raise RuntimeError(f"celery worker did not start: {exc}") from None
    return workers
