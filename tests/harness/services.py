"""Real services for the tests: Docker Distribution, Redis, a Celery worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from registry import RegistryClient

from .ports import free_port, wait_for_port
from .tokenserver import ISSUER, TokenServer

ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret-password"
NARROW_USER, NARROW_PASSWORD = "narrow", "narrow-secret-password"


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RunningRegistry:
    mode: str  # anonymous, basic, token
    port: int
    folder: Path
    process: subprocess.Popen | None = None
    token_server: TokenServer | None = None
    notify_url: str = ""
    # The bearer token Distribution sends with each notification: the
    # dashboard registry's own webhook token (Registry.webhook_token_rotate).
    notify_token: str = ""
    # Distribution always writes its access log (a line per request) on stdout;
    # "warn" leaves only that and real warnings (the benchmark counts requests).
    log_level: str = "info"
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_path = self.folder / "config.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "registry.log"

    def credentials(self, user: str = ADMIN_USER) -> tuple[str, str]:
        if self.mode == "anonymous":
            return "", ""
        return (user, ADMIN_PASSWORD if user == ADMIN_USER else NARROW_PASSWORD)

    def client(self, user: str = ADMIN_USER, **kwargs) -> RegistryClient:
        username, password = self.credentials(user)
        return RegistryClient(self.url, username=username, password=password, insecure=True, **kwargs)

    def skopeo_creds(self) -> list[str]:
        username, password = self.credentials()
        return [f"--creds={username}:{password}"] if username else []

    def write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            f"  level: {self.log_level}",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.data_dir}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: test-registry-secret",
        ]
        if self.mode == "basic":
            lines += ["auth:", "  htpasswd:", "    realm: test-basic", f"    path: {self.folder / 'htpasswd'}"]
        elif self.mode == "token":
            assert self.token_server is not None
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", "    service: test-registry",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token_server.cert_path}"]
        if self.notify_url:
            lines += ["notifications:", "  endpoints:", "    - name: dashboard", f"      url: {self.notify_url}",
                      "      headers:", f"        Authorization: [Bearer {self.notify_token}]",
                      "      timeout: 2s", "      threshold: 3", "      backoff: 1s"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> RunningRegistry:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "basic":
            lines = [f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
                     for user, password in ((ADMIN_USER, ADMIN_PASSWORD), (NARROW_USER, NARROW_PASSWORD))]
            (self.folder / "htpasswd").write_text("\n".join(lines) + "\n")
        if self.mode == "token" and self.token_server is None:
            self.token_server = TokenServer(self.folder, users={ADMIN_USER: ADMIN_PASSWORD,
                                                                NARROW_USER: NARROW_PASSWORD},
                                            service="test-registry", narrow_users={NARROW_USER}).start()
        self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(["docker-registry", "serve", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def shutdown(self) -> None:
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()


def registry_start(folder: Path, mode: str, **kwargs) -> RunningRegistry:
    folder.mkdir(parents=True, exist_ok=True)
    return RunningRegistry(mode=mode, port=free_port(), folder=folder, **kwargs).start()


def redis_start(folder: Path, port: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, process=process)
    return process


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process, timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def worker_start(folder: Path, env: dict[str, str], *, name: str = "w1", concurrency: int = 2,
                 queues: str = "celery") -> Worker:
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"worker-{name}.log"
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    process = subprocess.Popen(
        [celery, "-A", "config", "worker", "-l", "INFO", "-c", str(concurrency), "-n", f"{name}@%h",
         "-Q", queues, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text(errors="replace"):
            return Worker(process, log_path)
        time.sleep(0.2)
    raise TimeoutError(f"celery worker not ready:\n{log_path.read_text()[-3000:]}")
