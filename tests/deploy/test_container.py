"""The image, built and run as a deployment runs it: a web and a worker container.

They run against the harness's Distribution, Redis and PostgreSQL on the
host (`--network host`). Everything goes through the image's own commands
(`manage`, `createsuperuser`) and its HTTP face: a registry added and scanned,
the API read, a list pushed through the API, the stylesheet served, the
processes not root, the health checks green, JSON logs without a credential.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from cryptography.fernet import Fernet

from manifests.stack.distribution import ADMIN_PASSWORD, ADMIN_USER
from manifests.stack.ports import free_port
from manifests.stack.postgres import postgres_start
from manifests.stack.processes import stop_process
from manifests.stack.redis import redis_start
from registry.images import image_push
from registry.platform import Platform
from tests.harness.podman import base_image_ensure, image_build, podman, podman_available

TAG = "localhost/manifest-dashboard:test"
SUPERUSER_PASSWORD = "container-admin-password-4711"
METRICS_TOKEN = "container-metrics-token-0815"


@pytest.fixture(scope="module")
def image():
    problem = podman_available()
    assert not problem, problem
    base_image_ensure()
    image_build(TAG)
    return TAG


@pytest.fixture(scope="module")
def postgres():
    cluster = postgres_start()
    yield cluster
    cluster.stop()


def _http(url: str, *, token: str = "", body: dict | None = None) -> tuple[int, dict | str, dict]:
    headers = {"Authorization": f"Token {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, raw, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, response_headers = exc.code, exc.read(), dict(exc.headers)
    text = raw.decode()
    if response_headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(text), response_headers
    return status, text, response_headers


class Deployment:
    """The containers of one test, their shared environment and their clean-up."""

    def __init__(self, image: str, folder, env: dict[str, str]) -> None:
        self.image = image
        self.folder = folder
        self.env = env
        self.names: list[str] = []
        self.secret_file = folder / "secret_key"
        self.secret_file.write_text("a-container-test-secret-key-" + Fernet.generate_key().decode() + "\n")
        self.secret_file.chmod(0o644)

    def _args(self, extra_env: dict[str, str] | None = None) -> list[str]:
        args = ["--network", "host", "-v", f"{self.secret_file}:/run/secrets/secret_key:ro",
                "-e", "SECRET_KEY_FILE=/run/secrets/secret_key"]
        for key, value in {**self.env, **(extra_env or {})}.items():
            args += ["-e", f"{key}={value}"]
        return args

    def start(self, role: str, *command: str) -> str:
        name = f"mdb-test-{role}-{os.getpid()}"
        podman("rm", "-f", name, check=False)
        self.names.append(name)
        podman("run", "-d", "--name", name, *self._args(), self.image, *command)
        return name

    def run(self, *command: str, stdin: str | None = None, extra_env: dict[str, str] | None = None,
            files: dict[str, str] | None = None, check: bool = True):
        """Run a one-off container; `files` maps a path inside it to the content of a read-only file."""
        interactive = ["-i"] if stdin is not None else []
        mounts = []
        for index, (target, content) in enumerate((files or {}).items()):
            source = self.folder / f"file-{index}"
            source.write_text(content)
            source.chmod(0o644)
            mounts += ["-v", f"{source}:{target}:ro"]
        result = podman("run", "--rm", *interactive, *mounts, *self._args(extra_env), self.image, *command,
                        input=stdin, check=check)
        return result if not check else result.stdout

    def logs(self) -> str:
        return "".join(podman("logs", name, check=False).stdout + podman("logs", name, check=False).stderr
                       for name in self.names)

    def remove(self) -> None:
        for name in self.names:
            podman("rm", "-f", "-t", "5", name, check=False)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis of the deployment's own: the session's has the test workers on it, which would take its tasks."""
    port = free_port()
    process = redis_start(tmp_path_factory.mktemp("deploy-redis"), port)
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(process)


@pytest.fixture
def deployment(image, postgres, redis_url, tmp_path):
    env = {"DATABASE_URL": postgres.url(),
           "REDIS_URL": redis_url, "CREDENTIALS_KEY": Fernet.generate_key().decode(),
           "PORT": str(free_port()), "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG",
           "WORKER_CONCURRENCY": "2", "WEB_CONCURRENCY": "1", "METRICS_TOKEN": METRICS_TOKEN}
    running = Deployment(image, tmp_path, env)
    yield running
    running.remove()


def _wait(predicate, *, timeout: float, what: str, logs=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} after {timeout}s:\n{logs()[-4000:]}")


def _healthz(base: str) -> bool:
    try:
        return _http(f"{base}/healthz")[0] == 200
    except OSError:
        return False


def test_the_image_serves_scans_and_pushes_as_a_deployment(deployment, fresh_registry):
    running = fresh_registry("basic")
    with running.client() as client:
        image_push(client, repository="username/x8664-test", tag="latest", platform=Platform("linux", "amd64"))
        image_push(client, repository="username/arm64v8-test", tag="latest",
                   platform=Platform("linux", "arm64", "v8"))
    base = f"http://127.0.0.1:{deployment.env['PORT']}"

    web = deployment.start("web")  # the default command: migrate, then gunicorn
    _wait(lambda: _healthz(base), timeout=90, what="the web container never answered /healthz",
          logs=deployment.logs)
    worker = deployment.start("worker", "worker")

    beat = deployment.start("beat", "beat")

    # The first admin, from the environment (its password as a _FILE), as the image documents it.
    deployment.run("createsuperuser", "--noinput", extra_env={
        "DJANGO_SUPERUSER_USERNAME": "boss", "DJANGO_SUPERUSER_EMAIL": "boss@example.com",
        "DJANGO_SUPERUSER_PASSWORD_FILE": "/run/secrets/admin_password"},
        files={"/run/secrets/admin_password": SUPERUSER_PASSWORD + "\n"})
    checked = deployment.run("manage", "shell", "-c", "from django.contrib.auth.models import User; "
                             "print(User.objects.get(username='boss').check_password("
                             "open('/run/secrets/admin_password').read().strip()))",
                             files={"/run/secrets/admin_password": SUPERUSER_PASSWORD + "\n"})
    assert checked.strip().endswith("True"), checked
    # A variable given twice, as NAME and NAME_FILE, is refused rather than guessed at.
    twice = deployment.run("manage", "check", extra_env={"SECRET_KEY": "another"}, check=False)
    assert twice.returncode == 1 and "both SECRET_KEY and SECRET_KEY_FILE are set" in twice.stderr
    # An empty NAME, as a blank line of .env.example gives, does not hide NAME_FILE.
    assert "System check identified no issues" in deployment.run("manage", "check", extra_env={"SECRET_KEY": ""})
    key = deployment.run("manage", "apitoken", "boss", "--scope", "push").strip()

    # A registry added (its password on stdin, never in argv) and scanned by the worker container.
    deployment.run("manage", "registry_add", "lab", running.url, "--username", ADMIN_USER, "--password-stdin",
                   "--insecure", stdin=ADMIN_PASSWORD + "\n")
    summary = deployment.run("manage", "scan", "lab", "--wait", "--timeout", "120")
    assert "repositories: 2" in summary, summary

    status, repositories, _ = _http(f"{base}/api/v1/registries/lab/repositories", token=key)
    assert status == 200, repositories
    assert {r["name"] for r in repositories["repositories"]} == {"username/x8664-test", "username/arm64v8-test"}

    status, created, _ = _http(f"{base}/api/v1/lists", token=key, body={
        "registry": "lab", "target": "username/test:latest",
        "sources": [{"reference": "username/x8664-test:latest"}, {"reference": "username/arm64v8-test:latest"}]})
    assert status == 202, created
    job = _wait(lambda: (lambda j: j if j["status"] in ("succeeded", "failed") else None)(
        _http(f"{base}/api/v1/jobs/{created['job']}", token=key)[1]), timeout=60, what="the push never finished",
        logs=deployment.logs)
    assert job["status"] == "succeeded", job
    status, tag, _ = _http(f"{base}/api/v1/registries/lab/repositories/username/test/tags/latest", token=key)
    assert status == 200, tag
    assert [p["platform"] for p in tag["platforms"]] == ["linux/amd64", "linux/arm64"]

    # /metrics, with its own token: the worker container's registry requests, counted through Redis.
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        metrics = response.read().decode()
    assert 'mdb_scans_total{status="succeeded"} 1.0' in metrics, metrics
    assert 'mdb_registry_requests_total{kind="catalog",method="GET",registry="lab",status="200"}' in metrics

    status, css, headers = _http(f"{base}/static/css/app.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and len(css) > 100

    # Not root, in both containers; and both say they are healthy.
    for name in (web, worker, beat):
        uid = podman("exec", name, "sh", "-c", "awk '/^Uid:/ {print $2}' /proc/1/status").stdout.strip()
        assert uid not in ("", "0"), (name, uid)
        assert podman("healthcheck", "run", name, check=False).returncode == 0, name

    # LOG_FORMAT=json: every line a JSON object, at DEBUG, with no credential in it.
    logs = deployment.logs()
    # (Lines starting "time=" are podman's own complaints: no systemd to time its health checks.)
    lines = [line for line in logs.splitlines() if line.strip() and not line.startswith("time=")]
    assert lines
    bad = [line for line in lines if not line.startswith("{")]
    assert not bad, bad[:10]
    assert all(json.loads(line)["level"] for line in lines)
    for secret in (ADMIN_PASSWORD, SUPERUSER_PASSWORD, key, deployment.env["CREDENTIALS_KEY"], METRICS_TOKEN):
        assert secret not in logs
