"""Copy blobs and manifests between two registries: chunked, resumable uploads.

A blob cannot be mounted from another registry: its bytes are read from the
source (GET, streamed) and written to the target in chunks (spec, "Pushing a
blob in chunks": POST, then PATCH with Content-Range, then PUT ?digest=). At
most one chunk is held in memory. When a PATCH's connection breaks, the
upload's status is asked (GET <location>: 204 with Range) and the upload goes
on from the byte the registry has. A registry that cannot say (Distribution
drops a session whose bytes no longer match its state, when a PATCH broke
half-way: its status answers 404 BLOB_UPLOAD_INVALID, or, asked before it
wrote the broken bytes, the old Range and then 404 BLOB_UPLOAD_INVALID to the
resumed PATCH) gets a new session, and the source is read again from the start.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

from . import errors
from .auth import repository_scope
from .client import RegistryClient, _with_digest
from .mediatypes import Manifest

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
READ_SIZE = 64 * 1024
MAX_RESUMES = 5
MAX_RESTARTS = 2

Progress = Callable[[dict], None]


def _noop(event: dict) -> None:
    pass


@dataclass
class TransferStats:
    """What a cross-registry copy moved, for the job's progress."""

    bytes_moved: int = 0
    blobs_streamed: int = 0
    blobs_present: int = 0
    manifests_copied: int = 0
    manifests_present: int = 0
    chunks: int = 0
    resumes: int = 0
    restarts: int = 0
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Bytes per second over the time spent streaming."""
        return self.bytes_moved / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"bytes_moved": self.bytes_moved, "blobs_streamed": self.blobs_streamed,
                "blobs_present": self.blobs_present, "manifests_copied": self.manifests_copied,
                "manifests_present": self.manifests_present, "chunks": self.chunks, "resumes": self.resumes,
                "restarts": self.restarts, "bytes_per_second": round(self.throughput)}


class _Restart(Exception):
    """The upload session is gone: start another one."""


def _chunks(response, size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in response.iter_content(READ_SIZE):
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def upload_status(client: RegistryClient, repository: str, location: str) -> tuple[str, int] | None:
    """GET <location> (spec, "Upload progress"): the session's Location and how many bytes it holds;
    None when the registry no longer knows the session."""
    try:
        response = client.request("GET", location, op="GET upload", ok=(204,),
                                  scopes=(repository_scope(repository, "pull,push"),))
    except (errors.NotFound, errors.RequestInvalid):
        return None
    response.close()
    text = response.headers.get("Range", "")
    _, _, end = text.partition("-")
    held = int(end) + 1 if end.isdigit() else 0
    return urljoin(response.url, response.headers.get("Location") or location), held


def _patch(client: RegistryClient, repository: str, location: str, data: bytes, start: int) -> str:
    response = client.request(
        "PATCH", location, op="PATCH blob", scopes=(repository_scope(repository, "pull,push"),),
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(data) - 1}",
                 "Content-Length": str(len(data))}, data=data, ok=(202,))
    response.close()
    return urljoin(response.url, response.headers.get("Location") or location)


def _send_chunk(client: RegistryClient, repository: str, location: str, chunk: bytes, start: int,
                stats: TransferStats, progress: Progress) -> str:
    """PATCH one chunk; on a broken connection ask the session how far it got and send the rest."""
    sent_from = start
    broken = False
    for _ in range(MAX_RESUMES + 1):
        try:
            location = _patch(client, repository, location, chunk[sent_from - start:], sent_from)
            stats.chunks += 1
            return location
        except (errors.NotFound, errors.RequestInvalid) as exc:
            if not broken:
                raise
            # Asked before Distribution had written the broken PATCH's bytes, the status named the
            # offset the session had; the bytes landed since, and the session is now refused
            # (404 BLOB_UPLOAD_INVALID): it is gone, as when the status says so at once.
            raise _Restart() from exc
        except errors.RegistryUnavailable as exc:
            broken = True
            status = upload_status(client, repository, location)
            if status is None:
                raise _Restart() from exc
            location, held = status
            if not start <= held <= start + len(chunk):
                raise _Restart() from exc
            stats.resumes += 1
            progress({"event": "resume", "at": held, "reason": str(exc)})
            if held == start + len(chunk):
                return location
            sent_from = held
    raise errors.RegistryUnavailable(f"the upload to {repository} kept breaking: gave up after {MAX_RESUMES} resumes")


def blob_transfer(*, source: RegistryClient, source_repository: str, target: RegistryClient,
                  target_repository: str, digest: str, size: int, chunk_size: int = DEFAULT_CHUNK_SIZE,
                  stats: TransferStats | None = None, progress: Progress = _noop) -> TransferStats:
    """Make blob `digest` exist in `target_repository` of another registry (HEAD, else stream in chunks)."""
    stats = stats or TransferStats()
    if target.blob_exists(target_repository, digest, push=True):
        stats.blobs_present += 1
        return stats
    began = time.monotonic()
    for attempt in range(MAX_RESTARTS + 1):
        location = target.start_upload(target_repository)
        response = source.request("GET", f"/v2/{source_repository}/blobs/{digest}", op="GET blob",
                                  scopes=(repository_scope(source_repository, "pull"),), stream=True)
        hasher = hashlib.sha256()
        offset = 0
        try:
            for chunk in _chunks(response, chunk_size):
                hasher.update(chunk)
                location = _send_chunk(target, target_repository, location, chunk, offset, stats, progress)
                offset += len(chunk)
                stats.bytes_moved += len(chunk)
                elapsed = stats.seconds + time.monotonic() - began
                progress({"event": "upload", "digest": digest, "bytes": offset, "of": size,
                          "bytes_per_second": round(stats.bytes_moved / elapsed) if elapsed > 0 else 0})
        except _Restart:
            stats.restarts += 1
            progress({"event": "restart", "digest": digest, "attempt": attempt + 1})
            target.cancel_upload(target_repository, location)
            continue
        finally:
            response.close()
        if digest.startswith("sha256:") and "sha256:" + hasher.hexdigest() != digest:
            target.cancel_upload(target_repository, location)
            raise errors.DigestMismatch(f"blob {digest} read from {source_repository} does not match its bytes")
        closing = target.request("PUT", _with_digest(location, digest), op="PUT blob",
                                 scopes=(repository_scope(target_repository, "pull,push"),),
                                 headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
                                 data=b"", ok=(201, 204))
        closing.close()
        stats.blobs_streamed += 1
        stats.seconds += time.monotonic() - began
        return stats
    raise errors.RegistryUnavailable(f"the upload of {digest} to {target_repository} failed "
                                     f"{MAX_RESTARTS + 1} times")


def manifest_transfer(*, source: RegistryClient, source_repository: str, target: RegistryClient,
                      target_repository: str, manifest: Manifest, chunk_size: int = DEFAULT_CHUNK_SIZE,
                      stats: TransferStats | None = None, progress: Progress = _noop) -> TransferStats:
    """Make `manifest` (an image, or an index and its children) exist by digest in another registry."""
    stats = stats or TransferStats()
    if target.manifest_exists(target_repository, manifest.digest, push=True):
        stats.manifests_present += 1
        return stats
    if manifest.is_index:
        for child in manifest.children:
            manifest_transfer(source=source, source_repository=source_repository, target=target,
                              target_repository=target_repository,
                              manifest=source.get_manifest(source_repository, child.digest),
                              chunk_size=chunk_size, stats=stats, progress=progress)
    else:
        for blob in manifest.blobs:
            blob_transfer(source=source, source_repository=source_repository, target=target,
                          target_repository=target_repository, digest=blob.digest, size=blob.size,
                          chunk_size=chunk_size, stats=stats, progress=progress)
    target.put_manifest(target_repository, manifest.digest, manifest.raw, manifest.media_type)
    stats.manifests_copied += 1
    progress({"event": "manifest", "digest": manifest.digest, "how": "copied across registries"})
    return stats
