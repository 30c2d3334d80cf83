"""Copy manifests and their blobs from one repository to another, by digest.

A list can only point at manifests in its own repository (shared notes,
registry-protocol §1): before a list is put, every child and its blobs must
exist in the target. Each step checks first and skips what is there, so a
copy that is interrupted and run again is safe and cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors
from .client import RegistryClient
from .mediatypes import Descriptor, Manifest

Progress = Callable[[dict], None]


@dataclass
class CopyReport:
    manifests_copied: int = 0
    manifests_present: int = 0
    blobs_mounted: int = 0
    blobs_streamed: int = 0
    blobs_present: int = 0
    bytes_streamed: int = 0
    mount_refusals: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "manifests_copied": self.manifests_copied,
            "manifests_present": self.manifests_present,
            "blobs_mounted": self.blobs_mounted,
            "blobs_streamed": self.blobs_streamed,
            "blobs_present": self.blobs_present,
            "bytes_streamed": self.bytes_streamed,
        }


def _noop(event: dict) -> None:
    pass


def copy_blob(client: RegistryClient, *, source: str, target: str, blob: Descriptor,
              report: CopyReport, progress: Progress = _noop, present: set[str] | None = None) -> None:
    """HEAD the target; else mount from the source; else stream it.

    `present`: digests already known to be in the target (a bulk copy shares
    one set across many lists, so a shared blob costs one request in all).
    """
    if present is not None and blob.digest in present:
        report.blobs_present += 1
        return
    _copy_blob(client, source=source, target=target, blob=blob, report=report, progress=progress)
    if present is not None:
        present.add(blob.digest)


def _copy_blob(client: RegistryClient, *, source: str, target: str, blob: Descriptor,
               report: CopyReport, progress: Progress = _noop) -> None:
    if client.blob_exists(target, blob.digest, push=True):
        report.blobs_present += 1
        progress({"event": "blob", "digest": blob.digest, "how": "present", "size": blob.size})
        return
    location: str | None = None
    if source != target:
        try:
            location = client.mount_blob(target, blob.digest, source)
        except (errors.Unauthorized, errors.Denied, errors.NotFound, errors.RequestInvalid) as exc:
            # A token without pull on the source, or a registry that refuses
            # the mount outright: fall back to streaming the bytes.
            report.mount_refusals.append(f"{blob.digest}: {exc}")
            location = None
        else:
            if location is None:
                report.blobs_mounted += 1
                progress({"event": "blob", "digest": blob.digest, "how": "mounted", "size": blob.size})
                return
    moved = client.stream_blob(source, target, blob.digest, blob.size, location=location)
    report.blobs_streamed += 1
    report.bytes_streamed += moved
    progress({"event": "blob", "digest": blob.digest, "how": "streamed", "size": blob.size, "bytes": moved})


def copy_manifest(client: RegistryClient, *, source: str, target: str, manifest: Manifest,
                  report: CopyReport | None = None, progress: Progress = _noop,
                  present: set[str] | None = None) -> CopyReport:
    """Make `manifest` (an image or a whole index) exist in `target` by digest.

    `present` as for copy_blob: manifests and blobs known to be in `target`.
    """
    report = report or CopyReport()
    if present is not None and manifest.digest in present:
        report.manifests_present += 1
        return report
    if client.manifest_exists(target, manifest.digest, push=True):
        if present is not None:
            present.add(manifest.digest)
        report.manifests_present += 1
        progress({"event": "manifest", "digest": manifest.digest, "how": "present"})
        return report
    if manifest.is_index:
        for child in manifest.children:
            child_manifest = client.get_manifest(source, child.digest)
            copy_manifest(client, source=source, target=target, manifest=child_manifest,
                          report=report, progress=progress, present=present)
    else:
        for blob in manifest.blobs:
            copy_blob(client, source=source, target=target, blob=blob, report=report, progress=progress,
                      present=present)
    client.put_manifest(target, manifest.digest, manifest.raw, manifest.media_type)
    if present is not None:
        present.add(manifest.digest)
    report.manifests_copied += 1
    progress({"event": "manifest", "digest": manifest.digest, "how": "copied"})
    return report
