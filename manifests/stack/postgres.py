"""A throwaway PostgreSQL cluster: a test session's (TEST_DATABASE=postgres), the benchmark's.

Debian's `postgresql` package gives the binaries; nothing of the system's own
clusters is used. The cluster lives in a temp dir owned by the `postgres`
user (PostgreSQL refuses to run as root), listens on 127.0.0.1 only, on a free
port, with its socket in the same temp dir, and trades durability for speed
(fsync, synchronous_commit and full_page_writes off): it is thrown away at the
end of the session anyway.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port

PG_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the system user that owns the cluster, and its superuser role
DATABASE = "mdb"  # pytest-django creates test_mdb next to it


def _as_postgres(argv: list[str]) -> list[str]:
    """Run `argv` as the postgres system user (setpriv execs: the pid we get is the program's)."""
    if os.geteuid() != 0:
        return argv  # already an unprivileged user: run as ourselves
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--", *argv]


@dataclass
class PostgresCluster:
    folder: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self._chown(self.folder)
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
            self._chown(path)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        try:
            # Password over TCP (the worker and the tests connect like a deployment
            # does), trust on the private socket dir only.
            subprocess.run(
                _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", PG_USER,
                              f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"]),
                check=True, capture_output=True, text=True, cwd=self.folder, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed:\n{exc.stdout}\n{exc.stderr}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, *, timeout: float = 30.0) -> PostgresCluster:
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"no PostgreSQL in {PG_BIN}: install the `postgresql` package (make test does)")
        self.init()
        log = self.log_path.open("ab")
        self._chown(self.log_path)
        self.process = subprocess.Popen(
            _as_postgres([str(PG_BIN / "postgres"), "-D", str(self.data_dir),
                          "-c", "listen_addresses=127.0.0.1", "-k", str(self.socket_dir), "-p", str(self.port),
                          "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                          "-c", "max_connections=200", "-c", "log_min_messages=warning"]),
            cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready(timeout)
        self._create_database(DATABASE)
        return self

    def _connect(self, database: str):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, password=self.password,
                               dbname=database, connect_timeout=2, autocommit=True)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with self._connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"postgres not accepting connections after {timeout}s: {exc}\n"
                                       f"{self.log()[-3000:]}") from None
            time.sleep(0.1)

    def _create_database(self, name: str) -> None:
        with self._connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self, *, timeout: float = 20.0) -> None:
        """Fast shutdown (open sessions are cut), then remove the cluster's files."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown; SIGTERM would wait for every client
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGQUIT)  # immediate shutdown
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_start() -> PostgresCluster:
    """A fresh cluster in a new temp dir (kept out of the session dir, which only root may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="mdb-postgres-"))
    return PostgresCluster(folder).start()
