"""The hostile registry's vocabulary: its constants, replies, records and small images."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST

SCRIPT = "<script>alert(1)</script>"
MiB = 1024 * 1024
MAX_HANG_SECONDS = 30.0  # the longest any request is held, whatever a test asks
MAX_STREAM_BYTES = 64 * MiB  # the longest "endless" body; a client that reads it all has failed
STREAM_CHUNK = 64 * 1024
ENDLESS_PAGES = 1000  # the "never-ending" tag list ends here, so a broken client still terminates
UNKNOWN_TYPE = "application/vnd.example.thing+json"
USER = "hostile-user"
PASSWORD = "hostile-password-never-to-leave-its-origin"
TOKEN = "hostile-bearer-token-never-to-leave-its-origin"
TRICKLE_SECONDS = 0.5  # a trickling answer sends one byte this often
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Catalog entries that break the repository grammar (distribution/reference).
BAD_NAMES = ("UPPER/Case", "../../etc/passwd", "a//b", "x" * 300, f"html/{SCRIPT}")
# Tag names that break the tag grammar, listed by html/app anyway.
BAD_TAGS = (SCRIPT, "t" * 200, "-starts-with-a-dash")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


def error_body(code: str, message: str, detail: object = None) -> bytes:
    entry: dict = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


@dataclass
class Reply:
    """One answer to a request; `fault` names the misbehaviour (None: a correct answer)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fault: str | None = None
    hang: float = 0.0  # hold the request this long (bounded, woken by stop), then close without answering
    reset: bool = False  # drop the connection with a TCP reset instead of answering
    stream: int = 0  # instead of `body`, send this many filler bytes (bounded by MAX_STREAM_BYTES)
    declare_length: bool = True  # with `stream`: send Content-Length; else chunked, with no length
    times: int | None = None  # answer only the next `times` requests this way, then the next reply
    trickle: str = ""  # "headers" or "body": send that part one byte every TRICKLE_SECONDS (bounded)


Route = list[Reply] | Callable[[dict[str, list[str]]], Reply]


@dataclass
class StreamRecord:
    path: str
    declared: int | None  # the Content-Length sent, if any
    sent: int = 0  # bytes of body written to the socket
    hung_up: bool = False  # the client closed the connection before the end


@dataclass(frozen=True)
class Seen:
    """One request as it reached a server: which origin, over which scheme, with which headers."""

    origin: str  # "registry" or "other"
    scheme: str
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lowercased

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass(frozen=True)
class Good:
    """A tag a correct client must store exactly so."""

    repository: str
    tag: str
    digest: str
    platforms: tuple[str, ...]
    kind: str


class Image:
    """Bytes of one small single-platform image: manifest, config, one layer."""

    def __init__(self, seed: str, *, os: str = "linux", architecture: str = "amd64", variant: str = "",
                 created: object = "2024-05-01T12:00:00Z", docker: bool = False) -> None:
        self.layer = f"layer of {seed}\n".encode()
        config: dict = {"architecture": architecture, "os": os, "created": created,
                        "config": {"Labels": {"seed": seed}},
                        "rootfs": {"type": "layers", "diff_ids": [sha256(self.layer)]}}
        if variant:
            config["variant"] = variant
        self.config = json_bytes(config)
        self.media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        self.raw = json_bytes({
            "schemaVersion": 2, "mediaType": self.media_type,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": sha256(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(self.layer), "size": len(self.layer)}],
        })
        self.digest = sha256(self.raw)
        platform = f"{os}/{architecture}" + (f"/{variant}" if variant else "")
        self.platform = {"linux/arm64/v8": "linux/arm64"}.get(platform, platform)

    def descriptor(self, **extra: object) -> dict:
        os_name, architecture, *variant = self.platform.split("/")
        platform = {"os": os_name, "architecture": architecture, **({"variant": variant[0]} if variant else {})}
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.raw), "platform": platform,
                **extra}
