"""What is attached to a manifest: signatures, SBOMs, attestations.

Three layouts, newest first:
- the OCI 1.1 referrers API, `GET /v2/<name>/referrers/<digest>` (distribution-spec
  "Listing Referrers"): an OCI index of the manifests whose `subject` is the digest;
- its fallback, the referrers tag schema: the tag `sha256-<hex>` holds such an index;
- cosign's own tags beside the subject: `sha256-<hex>.sig`, `.att`, `.sbom`.

Only the first costs a request of its own; the tags are in the repository's tag
list, which a scan reads anyway. Pure Python: no Django here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from . import errors
from .auth import repository_scope
from .mediatypes import ATTESTATION_MANIFEST, ATTESTATION_REFERENCE_TYPE, OCI_INDEX

MAX_REFERRERS_BYTES = 4 * 1024 * 1024

# Classification (the kinds a page shows).
COSIGN_SIGNATURE = "cosign-signature"
NOTATION_SIGNATURE = "notation-signature"
SBOM_SPDX = "sbom-spdx"
SBOM_CYCLONEDX = "sbom-cyclonedx"
SLSA_PROVENANCE = "slsa-provenance"
IN_TOTO = "in-toto"
BUILDKIT_ATTESTATION = "buildkit-attestation"
UNKNOWN = "unknown"
SIGNATURES = (COSIGN_SIGNATURE, NOTATION_SIGNATURE)

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
NOTATION = "application/vnd.cncf.notary.signature"
DSSE = "application/vnd.dsse.envelope.v1+json"
INTOTO = "application/vnd.in-toto+json"
PREDICATE_TYPE = "in-toto.io/predicate-type"
COSIGN_PREDICATE = "predicateType"

_TAG = re.compile(r"^sha256-([0-9a-f]{64})(?:\.(sig|att|sbom))?$")


@dataclass(frozen=True)
class Referrer:
    digest: str
    media_type: str
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    source: str = ""  # referrers-api, tag-schema, cosign-tag


def referrer_tag(digest: str, suffix: str = "") -> str:
    """The tag that holds what refers to `digest`: `sha256-<hex>`, or cosign's `sha256-<hex>.sig`."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}" + (f".{suffix}" if suffix else "")


def tag_subject(tag: str) -> tuple[str, str] | None:
    """(subject digest, cosign suffix or "") for a referrer tag; None for an ordinary tag."""
    match = _TAG.match(tag)
    if match is None:
        return None
    return "sha256:" + match.group(1), match.group(2) or ""


def _descriptors(data: object, *, source: str) -> list[Referrer]:
    if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
        raise errors.ManifestInvalid("the referrers answer is not an image index")
    found: list[Referrer] = []
    for item in data["manifests"]:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            continue
        annotations = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
        found.append(Referrer(digest=item["digest"], media_type=str(item.get("mediaType") or ""),
                              artifact_type=str(item.get("artifactType") or ""),
                              annotations={str(k): str(v) for k, v in annotations.items()}, source=source))
    return found


def referrers_get(client, repository: str, digest: str) -> list[Referrer] | None:
    """GET /v2/<name>/referrers/<digest> (distribution-spec v1.1, Listing Referrers).

    None when the registry does not serve the API (404 on the endpoint, as
    Distribution 2.8 answers): use the tag schema then.
    """
    try:
        response = client.request("GET", f"/v2/{repository}/referrers/{digest}", op="GET referrers",
                                  scopes=(repository_scope(repository, "pull"),),
                                  headers={"Accept": OCI_INDEX}, stream=True)
    except errors.NotFound:
        return None
    try:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_REFERRERS_BYTES:
            raise errors.ContentTooLarge(f"the referrers index is over {MAX_REFERRERS_BYTES} bytes")
        body = response.raw.read(MAX_REFERRERS_BYTES + 1, decode_content=True)
    finally:
        response.close()
    if len(body) > MAX_REFERRERS_BYTES:
        raise errors.ContentTooLarge(f"the referrers index is over {MAX_REFERRERS_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise errors.ManifestInvalid("the referrers answer is not JSON") from None
    return _descriptors(data, source="referrers-api")


def index_referrers(raw: bytes) -> list[Referrer]:
    """The referrers listed by a tag-schema index (the manifest the `sha256-<hex>` tag holds)."""
    try:
        return _descriptors(json.loads(raw), source="tag-schema")
    except (ValueError, errors.ManifestInvalid):
        return []


def classify(*, artifact_type: str = "", config_type: str = "", layer_types: tuple[str, ...] = (),
             annotations: dict[str, str] | None = None, cosign_suffix: str = "") -> str:
    """What an attached manifest is, from its artifactType, config and layer media types and annotations."""
    annotations = annotations or {}
    types = {artifact_type, config_type, *layer_types} - {""}
    if annotations.get(ATTESTATION_REFERENCE_TYPE) == ATTESTATION_MANIFEST:
        return BUILDKIT_ATTESTATION
    if NOTATION in types:
        return NOTATION_SIGNATURE
    if cosign_suffix == "sig" or COSIGN_SIMPLESIGNING in types or COSIGN_ARTIFACT_SIG in types:
        return COSIGN_SIGNATURE
    predicate = annotations.get(PREDICATE_TYPE) or annotations.get(COSIGN_PREDICATE) or ""
    if any("spdx" in t for t in types) or "spdx.dev" in predicate:
        return SBOM_SPDX
    if any("cyclonedx" in t for t in types) or "cyclonedx.org" in predicate:
        return SBOM_CYCLONEDX
    if "slsa.dev/provenance" in predicate:
        return SLSA_PROVENANCE
    if INTOTO in types or DSSE in types or cosign_suffix == "att":
        return IN_TOTO
    if cosign_suffix == "sbom":
        return SBOM_SPDX if not any("cyclonedx" in t for t in types) else SBOM_CYCLONEDX
    return UNKNOWN


def manifest_classify(raw: bytes, *, annotations: dict[str, str] | None = None, cosign_suffix: str = "") -> str:
    """Classify an attached manifest from its own bytes (plus the descriptor's annotations)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return UNKNOWN
    if not isinstance(data, dict):
        return UNKNOWN
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    layers = [layer for layer in data.get("layers") or [] if isinstance(layer, dict)]
    merged: dict[str, str] = {}
    for layer in layers:
        if isinstance(layer.get("annotations"), dict):
            merged.update({str(k): str(v) for k, v in layer["annotations"].items()})
    if isinstance(data.get("annotations"), dict):
        merged.update({str(k): str(v) for k, v in data["annotations"].items()})
    merged.update(annotations or {})
    return classify(artifact_type=str(data.get("artifactType") or ""), config_type=str(config.get("mediaType") or ""),
                    layer_types=tuple(str(layer.get("mediaType") or "") for layer in layers), annotations=merged,
                    cosign_suffix=cosign_suffix)


def referrer_copy(client, *, source: str, target: str, reference: str, tag: str = "") -> str:
    """Copy an attached manifest (and what it needs) from `source` to `target`; put it under `tag` too.

    The tag schema's `sha256-<hex>` index may exist in the target already (other
    referrers of the same subject): the two are merged, never overwritten.
    Returns the digest put under the tag (or copied).
    """
    from .copy import copy_manifest

    manifest = client.get_manifest(source, reference)
    copy_manifest(client, source=source, target=target, manifest=manifest)
    if not tag:
        return manifest.digest
    raw, media_type = manifest.raw, manifest.media_type
    if manifest.is_index:
        try:
            present = client.get_manifest(target, tag)
        except errors.NotFound:
            present = None
        if present is not None and present.digest != manifest.digest and present.is_index:
            merged = dict(manifest.data)
            seen = {m.get("digest") for m in manifest.data.get("manifests", [])}
            merged["manifests"] = [*manifest.data.get("manifests", []),
                                   *(m for m in present.data.get("manifests", []) if m.get("digest") not in seen)]
            raw = json.dumps(merged, indent=2).encode()
    return client.put_manifest(target, tag, raw, media_type)
