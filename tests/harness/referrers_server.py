"""A small read-only registry on loopback that serves the OCI 1.1 referrers API.

Distribution 2.8 serves no referrers API; this answers `GET /v2/<name>/referrers/<digest>`
as distribution-spec v1.1 says (an OCI index of the manifests whose `subject`
is the digest, `artifactType` copied up), besides the few reads a scan makes:
`/v2/`, the tag list, manifests (GET and HEAD) and blobs.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ReferrersRegistry:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, raw)
        self.tags: dict[str, dict[str, str]] = {}  # repository -> tag -> digest
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                registry.requests.append(f"{self.command} {self.path}")
                path = self.path.split("?", 1)[0]
                if path == "/v2/":
                    return self._send(200, b"{}", {"Content-Type": "application/json"})
                if match := re.fullmatch(r"/v2/(.+)/tags/list", path):
                    name = match.group(1)
                    if name not in registry.tags:
                        return self._send(404, b'{"errors": [{"code": "NAME_UNKNOWN", "message": "no such"}]}')
                    body = json.dumps({"name": name, "tags": sorted(registry.tags[name])}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                if match := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
                    name, reference = match.groups()
                    digest = reference if reference.startswith("sha256:") else registry.tags.get(name, {}).get(
                        reference, "")
                    if digest not in registry.manifests:
                        return self._send(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "no such"}]}')
                    media_type, raw = registry.manifests[digest]
                    return self._send(200, raw, {"Content-Type": media_type, "Docker-Content-Digest": digest})
                if match := re.fullmatch(r"/v2/(.+)/blobs/([^/]+)", path):
                    blob = registry.blobs.get(match.group(2))
                    if blob is None:
                        return self._send(404, b'{"errors": [{"code": "BLOB_UNKNOWN", "message": "no such"}]}')
                    return self._send(200, blob, {"Content-Type": "application/octet-stream",
                                                  "Docker-Content-Digest": match.group(2)})
                if match := re.fullmatch(r"/v2/(.+)/referrers/([^/]+)", path):
                    subject = match.group(2)
                    entries = []
                    for digest, (media_type, raw) in sorted(registry.manifests.items()):
                        data = json.loads(raw)
                        if (data.get("subject") or {}).get("digest") == subject:
                            entry = {"mediaType": media_type, "digest": digest, "size": len(raw)}
                            artifact_type = data.get("artifactType") or (data.get("config") or {}).get("mediaType")
                            if artifact_type:
                                entry["artifactType"] = artifact_type
                            if data.get("annotations"):
                                entry["annotations"] = data["annotations"]
                            entries.append(entry)
                    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
                    return self._send(200, body, {"Content-Type": OCI_INDEX})
                return self._send(404, b'{"errors": [{"code": "NOT_FOUND", "message": "no route"}]}')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def blob(self, data: bytes) -> dict:
        self.blobs[_digest(data)] = data
        return {"digest": _digest(data), "size": len(data)}

    def manifest(self, repository: str, data: dict, *, tag: str = "") -> dict:
        raw = json.dumps(data).encode()
        digest = _digest(raw)
        self.manifests[digest] = (data["mediaType"], raw)
        self.tags.setdefault(repository, {})
        if tag:
            self.tags[repository][tag] = digest
        return {"mediaType": data["mediaType"], "digest": digest, "size": len(raw)}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
