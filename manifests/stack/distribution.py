"""Docker Distribution on loopback, anonymous, with Basic auth (htpasswd) or with tokens, over http or TLS.

Basic and token modes know two users: an admin and a "narrow" user whose
token grants only the first scope asked for (tokenserver.py).
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from registry import RegistryClient

from .ports import free_port, wait_for_port
from .processes import stop_process
from .tokenserver import ISSUER, TokenServer

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret-password"
NARROW_USER, NARROW_PASSWORD = "narrow", "narrow-secret-password"


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
    notify_threshold: int = 3
    notify_backoff: str = "1s"
    # Distribution always writes its access log (a line per request) on stdout;
    # "warn" leaves only that and real warnings (the benchmark counts requests).
    log_level: str = "info"
    # Distribution's stdout and stderr; folder/registry.log unless given.
    log_file: Path | None = None
    # Serve https with this certificate and key (PEM files) instead of plain http.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Signs upload state; one per registry, kept across restart().
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_path = self.folder / "config.yml"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.log_file or self.folder / "registry.log"

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
            f"  secret: {self.secret}",
        ]
        if self.tls_cert is not None:
            lines += ["  tls:", f"    certificate: {self.tls_cert}", f"    key: {self.tls_key}"]
        if self.mode == "basic":
            lines += ["auth:", "  htpasswd:", "    realm: test-basic", f"    path: {self.folder / 'htpasswd'}"]
        elif self.mode == "token":
            if self.token_server is None:
                raise RuntimeError("token mode: start() makes the token server before the config")
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", "    service: test-registry",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token_server.cert_path}"]
        if self.notify_url:
            lines += ["notifications:", "  endpoints:", "    - name: dashboard", f"      url: {self.notify_url}",
                      "      headers:", f"        Authorization: [Bearer {self.notify_token}]",
                      "      timeout: 2s", f"      threshold: {self.notify_threshold}",
                      f"      backoff: {self.notify_backoff}"]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> RunningRegistry:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "basic":
            import bcrypt  # a test dependency: only Basic mode hashes passwords

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
        try:
            wait_for_port(self.port, process=self.process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{self.log_path.read_text(errors='replace')[-3000:]}") from None
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
