"""Start the whole local stack for `make run`, on loopback, and stop it on Ctrl-C.

Redis (or the one already answering on REDIS_URL), a demo Docker
Distribution seeded with real-world shapes, a Celery worker and beat, and the
web server under gunicorn. Running it again reuses the data under var/.
"""

from __future__ import annotations

import os
import secrets
import signal
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
from manifests.stack.distribution import RunningRegistry
from manifests.stack.ports import port_listening, wait_for_port
from manifests.stack.redis import redis_start
from manifests.stack.workers import worker_start

VAR = Path(settings.BASE_DIR) / "var"


def _started(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    try:
        wait_for_port(port, timeout=timeout, process=process)
    except (RuntimeError, TimeoutError) as exc:
        raise CommandError(f"{what}: {exc}; see its log under var/") from None


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
        if port_listening(port):
            raise CommandError(f"port {port} is taken: is `make run` already running? (PORT=... to choose another)")
        redis_port = urlsplit(settings.REDIS_URL).port or 6379
        if port_listening(redis_port):
            self.stdout.write(f"redis: using the server already on {redis_port}")
        else:
            try:
                self.processes.append(("redis", redis_start(VAR, redis_port, persist=True)))
            except (RuntimeError, TimeoutError) as exc:
                raise CommandError(f"redis-server: {exc}; see var/redis.log") from None
            self.stdout.write(f"redis: started on 127.0.0.1:{redis_port}")

        if port_listening(registry_port):
            raise CommandError(f"port {registry_port} is taken; set DEMO_REGISTRY_PORT to a free port")
        # The demo registry's own webhook token (var/webhook.key, made by `make
        # run`), set on its row once seed_demo has registered it.
        webhook_key = VAR / "webhook.key"
        webhook = webhook_key.read_text().strip() if webhook_key.exists() else secrets.token_urlsafe(24)
        registry = RunningRegistry(mode="anonymous", port=registry_port, folder=VAR / "demo-registry",
                                   log_file=VAR / "logs" / "registry.log",
                                   notify_url=f"http://127.0.0.1:{port}/hooks/registry/demo", notify_token=webhook,
                                   notify_threshold=5, notify_backoff="2s")
        try:
            registry.start()
        except (RuntimeError, TimeoutError) as exc:
            registry.stop()
            raise CommandError(f"docker-registry: {exc}; see var/logs/registry.log") from None
        self.processes.append(("registry", registry.process))
        self.stdout.write(f"registry: demo Docker Distribution on {registry.url}")
        call_command("seed_demo", registry.url, "--insecure", "--name", "demo")
        Registry.objects.get(name="demo").webhook_token_set(webhook)

        password = self._admin()
        python = sys.executable
        bin_dir = Path(python).parent
        worker = worker_start(VAR, {}, name="worker", log_path=VAR / "logs" / "worker.log", wait=False)
        self.processes.append(("worker", worker.process))
        self._spawn("beat", [str(bin_dir / "celery"), "-A", "config", "beat", "-l", "INFO",
                             "-s", str(VAR / "celerybeat-schedule")])
        web = self._spawn("web", [str(bin_dir / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "3",
                                  "--access-logfile", "-"])
        _started(port, web, "gunicorn")
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
