"""Start the whole local stack for `make run`, on loopback, and stop it on Ctrl-C.

Redis (or the one already answering on REDIS_URL), a demo Docker
Distribution seeded with real-world shapes, a Celery worker and beat, and the
web server under gunicorn. Running it again reuses the data under var/.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from manifests.models import Registry

VAR = Path(settings.BASE_DIR) / "var"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{what} exited with {process.returncode}; see its log under var/")
        if _listening(port):
            return
        time.sleep(0.1)
    raise CommandError(f"{what} is not listening on {port} after {timeout}s")


class Command(BaseCommand):
    help = "Run Redis, a seeded demo registry, a Celery worker and beat, and the web server."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--registry-port", type=int, default=int(os.environ.get("DEMO_REGISTRY_PORT", "5050")))

    def handle(self, *args, port: int, registry_port: int, **options) -> None:
        VAR.mkdir(exist_ok=True)
        (VAR / "logs").mkdir(exist_ok=True)
        self.processes: list[tuple[str, subprocess.Popen]] = []
        # Set both explicitly: a shell starting us in the background ignores SIGINT.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._interrupt)
        try:
            self._start(port, registry_port)
            self._supervise()
        except KeyboardInterrupt:
            self.stdout.write("\nstopping...")
        finally:
            self._stop_all()

    @staticmethod
    def _interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    def _spawn(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        log = (VAR / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   cwd=settings.BASE_DIR, **kwargs)
        self.processes.append((name, process))
        return process

    def _start(self, port: int, registry_port: int) -> None:
        if _listening(port):
            raise CommandError(f"port {port} is taken: is `make run` already running? (PORT=... to choose another)")
        redis = urlsplit(settings.REDIS_URL)
        redis_port = redis.port or 6379
        if _listening(redis_port):
            self.stdout.write(f"redis: using the server already on {redis_port}")
        else:
            process = self._spawn("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                            "--dir", str(VAR), "--save", "60 1", "--dbfilename", "redis.rdb"])
            _wait(redis_port, process, "redis-server")
            self.stdout.write(f"redis: started on 127.0.0.1:{redis_port}")

        if _listening(registry_port):
            raise CommandError(f"port {registry_port} is taken; set DEMO_REGISTRY_PORT to a free port")
        folder = VAR / "demo-registry"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        # The demo registry's own webhook token (var/webhook.key, made by `make
        # run`), set on its row once seed_demo has registered it.
        webhook_key = VAR / "webhook.key"
        webhook = webhook_key.read_text().strip() if webhook_key.exists() else secrets.token_urlsafe(24)
        config = [
            "version: 0.1", "log:", "  level: info", "  formatter: text",
            "storage:", "  filesystem:", f"    rootdirectory: {folder / 'data'}", "  delete:", "    enabled: true",
            "http:", f"  addr: 127.0.0.1:{registry_port}", f"  secret: {secrets.token_hex(16)}",
            "notifications:", "  endpoints:", "    - name: dashboard",
            f"      url: http://127.0.0.1:{port}/hooks/registry/demo",
            "      headers:", f"        Authorization: [Bearer {webhook}]",
            "      timeout: 2s", "      threshold: 5", "      backoff: 2s",
        ]
        (folder / "config.yml").write_text("\n".join(config) + "\n")
        process = self._spawn("registry", ["docker-registry", "serve", str(folder / "config.yml")])
        _wait(registry_port, process, "docker-registry")
        registry_url = f"http://127.0.0.1:{registry_port}"
        self.stdout.write(f"registry: demo Docker Distribution on {registry_url}")
        call_command("seed_demo", registry_url, "--insecure", "--name", "demo")
        Registry.objects.get(name="demo").webhook_token_set(webhook)

        password = self._admin()
        python = sys.executable
        bin_dir = Path(python).parent
        self._spawn("worker", [str(bin_dir / "celery"), "-A", "config", "worker", "-l", "INFO", "-c", "2",
                               "-n", "worker@%h"])
        self._spawn("beat", [str(bin_dir / "celery"), "-A", "config", "beat", "-l", "INFO",
                             "-s", str(VAR / "celerybeat-schedule")])
        web = self._spawn("web", [str(bin_dir / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "3",
                                  "--access-logfile", "-"])
        _wait(port, web, "gunicorn")
        from manifests.scan.fanout import scan_submit

        try:
            scan_submit(registry=Registry.objects.get(name="demo"))
        except Exception as exc:  # the page says so too; the stack still runs
            self.stdout.write(f"could not enqueue the first scan: {exc}")
        self.stdout.write(self.style.SUCCESS(
            f"\nDashboard: http://127.0.0.1:{port}/  user: admin  password: {password}\n"
            f"Logs: {VAR / 'logs'}   Stop: Ctrl-C\n"))

    def _admin(self) -> str:
        """Create the admin account once; its password lives in var/admin-password."""
        path = VAR / "admin-password"
        if path.exists():
            password = path.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            path.write_text(password + "\n")
            path.chmod(0o600)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True,
                                                                              "is_superuser": True})
        if not user.check_password(password):
            user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        return password

    def _supervise(self) -> None:
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with {process.returncode}; see var/logs/{name}.log")
                    return
            time.sleep(0.5)

    def _stop_all(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
