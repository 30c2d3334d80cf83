"""A small token server whose JWTs Docker Distribution trusts (`auth: token:`).

Implements the Docker token authentication spec's GET endpoint: Basic
credentials (or none, for anonymous pull), repeated `scope` parameters,
answers `{"token", "access_token", "expires_in", "issued_at"}` signed ES256
with an `x5c` header whose certificate is the registry's `rootcertbundle`.

Users in `narrow_users` get only the first scope they ask for, as some real
token servers do: a token silently granting less than asked.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ISSUER = "test-token-issuer"


def _certificate(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, bytes, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "token-cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert.public_bytes(serialization.Encoding.DER), path


class TokenServer:
    def __init__(self, folder: Path, *, users: dict[str, str], service: str, narrow_users: set[str] = frozenset(),
                 lifetime: int = 300) -> None:
        self.users = users
        self.narrow_users = set(narrow_users)
        self.service = service
        self.lifetime = lifetime
        self._key, self._der, self.cert_path = _certificate(folder)
        self.requests: list[dict] = []
        self.issued: list[str] = []  # every token handed out, for tests that check none is logged
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                user = server._authenticate(self.headers.get("Authorization", ""))
                server.requests.append({"user": user, "scopes": query.get("scope", [])})
                if user is False:
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    self.send_response(401)
                else:
                    token = server.issue(user or "", query.get("service", [""])[0], query.get("scope", []))
                    body = json.dumps({"token": token, "access_token": token, "expires_in": server.lifetime,
                                       "issued_at": datetime.datetime.now(datetime.UTC).isoformat()})
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _authenticate(self, header: str) -> str | None | bool:
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        if not header.lower().startswith("basic "):
            return False
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if self.users.get(username) == password:
            return username
        return False

    def _grant(self, user: str, scopes: list[str]) -> list[dict]:
        access = []
        for scope in scopes[:1] if user in self.narrow_users else scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")  # names may hold host:port; actions never hold ':'
            allowed = [a for a in actions.split(",") if a]
            if not user:
                allowed = [a for a in allowed if a == "pull"]
            if kind == "registry" and not user:
                allowed = []
            if allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def issue(self, user: str, service: str, scopes: list[str]) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user, "aud": service or self.service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": self._grant(user, scopes)}
        headers = {"x5c": [base64.b64encode(self._der).decode()]}
        token = jwt.encode(claims, self._key, algorithm="ES256", headers=headers)
        self.issued.append(token)
        return token
