"""A real OpenID Connect provider for the sign-in tests: django-oidc-provider in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from manifests.stack.ports import free_port, wait_for_port
from manifests.stack.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "dashboard", "oidc-client-secret-for-tests"

_SETUP = """
import json, sys
import django
django.setup()
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from oidc_provider.models import Client, ResponseType
call_command("creatersakey")
spec = json.loads(sys.stdin.read())
client = Client.objects.create(name="dashboard", client_id=spec["client_id"], client_secret=spec["client_secret"],
                               client_type="confidential", jwt_alg="RS256", require_consent=False)
client.redirect_uris = [spec["redirect_uri"]]
client.save()
client.response_types.set([ResponseType.objects.get(value="code")])
for user in spec["users"]:
    made = User.objects.create_user(user["username"], email=user["email"], password=user["password"])
    for name in user["groups"]:
        made.groups.add(Group.objects.get_or_create(name=name)[0])
"""


@dataclass
class OidcUser:
    username: str
    password: str
    email: str
    groups: list[str]


@dataclass
class OidcProvider:
    folder: Path
    redirect_uri: str
    users: list[OidcUser]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openid"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.harness.oidc_provider.settings",
                "OIDC_PROVIDER_DB": str(self.folder / "provider.sqlite3")}

    def settings(self) -> dict[str, str]:
        """The dashboard's settings for this provider."""
        return {"OIDC_RP_CLIENT_ID": CLIENT_ID, "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
                "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
                "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token", "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
                "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks", "OIDC_RP_SIGN_ALGO": "RS256",
                "OIDC_RP_SCOPES": "openid email profile groups"}

    def start(self) -> OidcProvider:
        import json

        self.folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=self.env(), check=True)
        spec = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": self.redirect_uri,
                "users": [vars(u) for u in self.users]}
        subprocess.run([sys.executable, "-c", _SETUP], cwd=ROOT, env=self.env(), input=json.dumps(spec), text=True,
                       check=True, capture_output=True)
        log = (self.folder / "provider.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}", "--noreload", "--nothreading"],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout=30, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
