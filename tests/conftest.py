from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from manifests.stack.distribution import RunningRegistry, registry_start
from manifests.stack.redis import redis_start
from manifests.stack.workers import worker_start
from tests.harness import plugin

SESSION_DIR = Path(plugin.SESSION_DIR)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def redis_server():
    from manifests.services import queue

    process = redis_start(SESSION_DIR / "redis", plugin.REDIS_PORT)
    # A page rendered before Redis started (pages ask for the banner) has
    # cached "unreachable" for a few seconds: ask again.
    queue.queue_forget()
    yield os.environ["REDIS_URL"]
    process.terminate()
    process.wait(10)


@pytest.fixture(autouse=True)
def _rule_plans_forgotten():
    """Each test starts with no rule plan made: tests reuse made-up digests for other contents, which a
    content-addressed memo (services.rules_plans) would take for the same."""
    from manifests.services.rules_plans import rule_plans_forget

    rule_plans_forget()
    yield


def _registry(mode: str):
    running = registry_start(SESSION_DIR / f"registry-{mode}", mode)
    return running


@pytest.fixture(scope="session")
def registry_anonymous():
    running = _registry("anonymous")
    yield running
    running.shutdown()


@pytest.fixture(scope="session")
def registry_basic():
    running = _registry("basic")
    yield running
    running.shutdown()


@pytest.fixture(scope="session")
def registry_token():
    running = _registry("token")
    yield running
    running.shutdown()


@pytest.fixture(params=["anonymous", "basic", "token"])
def any_registry(request) -> RunningRegistry:
    """The same test against each auth mode."""
    return request.getfixturevalue(f"registry_{request.param}")


@pytest.fixture
def fresh_registry(tmp_path):
    """A registry of its own for a test that stops, breaks or fills it."""
    started: list[RunningRegistry] = []

    def start(mode: str = "anonymous", **kwargs) -> RunningRegistry:
        running = registry_start(tmp_path / f"registry-{len(started)}", mode, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.shutdown()


def _worker_env() -> dict[str, str]:
    from django.db import connection

    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{settings['NAME']}"
    else:
        url = (f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST'] or '127.0.0.1'}:"
               f"{settings['PORT'] or 5432}/{settings['NAME']}")
    # A short registry timeout keeps the fault tests' hangs short.
    return {"DATABASE_URL": url, "REDIS_URL": os.environ["REDIS_URL"], "REGISTRY_TIMEOUT_SECONDS": "4",
            "CREDENTIALS_KEY": os.environ["CREDENTIALS_KEY"], "TEST_DATABASE_NAME": ""}


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, redis_server) -> dict[str, str]:
    with django_db_blocker.unblock():
        return _worker_env()


@pytest.fixture(scope="session")
def celery_worker(worker_env):
    worker = worker_start(SESSION_DIR / "worker", worker_env)
    yield worker
    worker.stop()


@pytest.fixture
def wait_job():
    """Poll a job row until the worker finishes it."""
    from manifests.models import Job

    def wait(job_id: int, *, timeout: float = 60.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = Job.objects.get(pk=job_id)
            if job.is_done:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not done after {timeout}s: {Job.objects.get(pk=job_id).__dict__}")

    return wait


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory):
    """Run skopeo with a policy that accepts our unsigned test images."""
    import subprocess

    policy = tmp_path_factory.mktemp("skopeo") / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    binary = shutil.which("skopeo")
    assert binary, "skopeo is not installed: make test installs it"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([binary, "--policy", str(policy), *args], capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"skopeo {' '.join(args)} failed: {result.stderr}")
        return result

    return run
