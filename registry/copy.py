"""Copy manifests and their blobs from one repository to another, by digest.

A list can only point at manifests in its own repository (the OCI distribution
spec answers a manifest PUT whose children are missing with MANIFEST_BLOB_UNKNOWN): before a list is put, every child and its blobs must
exist in the target. Two ways:

- checking (the default): each step asks first (HEAD) and skips what is
  there, so a copy that is interrupted and run again is safe and cheap;
- at the floor (`check_first=False`, what a push does): no HEAD at all. A
  mount that answers 201 proves the blob is in the target; a manifest PUT
  answered 201 with our digest proves the manifest and (the registry checks
  before it stores) its blobs. A blob is mounted once per copy however many
  manifests share it. Only a refused mount asks first, before streaming
  bytes (a resumed copy then finds what its first attempt moved).
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
    # Digests this copy has made exist in the target (blobs and manifests), and the manifests whose
    # PUT answer proved them (201 with our digest): what a push need not read back.
    done: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)

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
              report: CopyReport, progress: Progress = _noop, check_first: bool = True,
              present: set[str] | None = None) -> None:
    """HEAD the target; else mount from the source; else stream it.

    Without `check_first`, the mount comes first (a 201 proves the blob is
    there, present before or not) and the HEAD only before streaming.
    `present`: digests already known to be in the target, shared by a bulk
    copy across many lists (a rule's tags), so a shared blob costs one request
    in all; what this copy makes exist is added to it.
    """
    if present is not None and blob.digest in present:
        report.blobs_present += 1
        return
    if blob.digest in report.done:
        return
    try:
        _copy_blob(client, source=source, target=target, blob=blob, report=report, progress=progress,
                   check_first=check_first)
    finally:
        if present is not None and blob.digest in report.done:
            present.add(blob.digest)


def _copy_blob(client: RegistryClient, *, source: str, target: str, blob: Descriptor,
               report: CopyReport, progress: Progress, check_first: bool) -> None:
    if check_first and _blob_present(client, target, blob, report, progress):
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
            if not check_first and _blob_present(client, target, blob, report, progress):
                return
        else:
            if location is None:
                report.blobs_mounted += 1
                report.done.add(blob.digest)
                progress({"event": "blob", "digest": blob.digest, "how": "mounted", "size": blob.size})
                return
    elif not check_first and _blob_present(client, target, blob, report, progress):
        return
    moved = client.stream_blob(source, target, blob.digest, blob.size, location=location)
    report.blobs_streamed += 1
    report.bytes_streamed += moved
    report.done.add(blob.digest)
    progress({"event": "blob", "digest": blob.digest, "how": "streamed", "size": blob.size, "bytes": moved})


def _blob_present(client: RegistryClient, target: str, blob: Descriptor, report: CopyReport,
                  progress: Progress) -> bool:
    if not client.blob_exists(target, blob.digest, push=True):
        return False
    report.blobs_present += 1
    report.done.add(blob.digest)
    progress({"event": "blob", "digest": blob.digest, "how": "present", "size": blob.size})
    return True


def copy_manifest(client: RegistryClient, *, source: str, target: str, manifest: Manifest,
                  report: CopyReport | None = None, progress: Progress = _noop,
                  check_first: bool = True, present: set[str] | None = None) -> CopyReport:
    """Make `manifest` (an image or a whole index) exist in `target` by digest.

    `check_first=False` sends no HEAD (see the module's docstring); the
    manifests whose PUT answer proved them are in `report.confirmed`.
    `present` as for copy_blob: manifests and blobs known to be in `target`
    (a manifest found there counts as proven, as a 201 answer would).
    """
    report = report or CopyReport()
    if present is not None and manifest.digest in present:
        report.manifests_present += 1
        report.done.add(manifest.digest)
        report.confirmed.add(manifest.digest)
        return report
    if manifest.digest in report.done:
        return report
    if check_first and client.manifest_exists(target, manifest.digest, push=True):
        report.manifests_present += 1
        report.done.add(manifest.digest)
        if present is not None:
            present.add(manifest.digest)
        progress({"event": "manifest", "digest": manifest.digest, "how": "present"})
        return report
    if manifest.is_index:
        for child in manifest.children:
            child_manifest = client.get_manifest(source, child.digest)
            copy_manifest(client, source=source, target=target, manifest=child_manifest,
                          report=report, progress=progress, check_first=check_first, present=present)
    else:
        for blob in manifest.blobs:
            copy_blob(client, source=source, target=target, blob=blob, report=report, progress=progress,
                      check_first=check_first, present=present)
    answer = client.put_manifest_answer(target, manifest.digest, manifest.raw, manifest.media_type)
    report.manifests_copied += 1
    report.done.add(manifest.digest)
    if present is not None:
        present.add(manifest.digest)
    if answer.confirmed:
        report.confirmed.add(manifest.digest)
    progress({"event": "manifest", "digest": manifest.digest, "how": "copied"})
    return report
