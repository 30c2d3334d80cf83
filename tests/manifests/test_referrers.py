"""Signatures, SBOMs and attestations: the tag schema on Distribution, the referrers API on a server of our own."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from manifests.models import Event, Referrer, Registry, Tag
from manifests.scan.repository import repository_scan
from registry.images import image_push, index_push
from registry.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, sha256_digest
from registry.platform import Platform
from registry.referrers import classify, referrer_tag, referrers_get, tag_subject
from tests.harness.referrers_server import ReferrersRegistry

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def _upload(client, repository: str, data: bytes) -> dict:
    digest = sha256_digest(data)
    if not client.blob_exists(repository, digest, push=True):
        client.upload_blob(repository, digest, data)
    return {"digest": digest, "size": len(data)}


def cosign_signature_push(client, repository: str, subject: str) -> str:
    """A signature as cosign lays it out: an image manifest under the tag sha256-<hex>.sig."""
    payload = json.dumps({"critical": {"identity": {"docker-reference": repository},
                                       "image": {"docker-manifest-digest": subject},
                                       "type": "cosign container image signature"}, "optional": None}).encode()
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha256_digest(payload)]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **_upload(client, repository, config)},
                "layers": [{"mediaType": SIMPLESIGNING, **_upload(client, repository, payload),
                            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ-not-a-real-signature"}}]}
    return client.put_manifest(repository, referrer_tag(subject, "sig"), json.dumps(manifest).encode(), OCI_MANIFEST)


def tag_schema_sbom_push(client, repository: str, subject: dict) -> str:
    """An SPDX SBOM artifact whose subject is `subject`, listed under the tag sha256-<hex> (OCI referrers tag schema)."""
    document = json.dumps({"spdxVersion": "SPDX-2.3", "name": "app"}).encode()
    sbom = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
            "config": {"mediaType": EMPTY, **_upload(client, repository, b"{}")},
            "layers": [{"mediaType": "application/spdx+json", **_upload(client, repository, document)}],
            "subject": subject}
    raw = json.dumps(sbom).encode()
    digest = client.put_manifest(repository, sha256_digest(raw), raw, OCI_MANIFEST)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw), "artifactType": "application/spdx+json"}]}
    client.put_manifest(repository, referrer_tag(subject["digest"]), json.dumps(index).encode(), OCI_INDEX)
    return digest


@pytest.fixture
def signed_arm64(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        images = [image_push(client, repository="team/app", tag=None, platform=p, oci=True) for p in (AMD64, ARM64)]
        index_push(client, repository="team/app", tag="latest", children=[i.descriptor() for i in images])
        signature = cosign_signature_push(client, "team/app", images[1].digest)
        sbom = tag_schema_sbom_push(client, "team/app", {"mediaType": images[0].media_type,
                                                         "digest": images[0].digest, "size": images[0].size})
    # Scanned before (required_missing is recorded only for tags new to a known registry).
    registry = Registry.objects.create(name="signed", url=running.url, insecure=True,
                                       required_platforms="linux/amd64,linux/arm64", last_scan_at=timezone.now())
    return running, registry, images, signature, sbom


def test_classification_of_what_tools_attach():
    assert classify(layer_types=(SIMPLESIGNING,)) == "cosign-signature"
    assert classify(artifact_type="application/vnd.cncf.notary.signature") == "notation-signature"
    assert classify(artifact_type="application/spdx+json") == "sbom-spdx"
    assert classify(artifact_type="application/vnd.cyclonedx+json") == "sbom-cyclonedx"
    assert classify(layer_types=("application/vnd.dsse.envelope.v1+json",),
                    annotations={"predicateType": "https://slsa.dev/provenance/v1"}) == "slsa-provenance"
    assert classify(layer_types=("application/vnd.in-toto+json",)) == "in-toto"
    assert classify(annotations={"vnd.docker.reference.type": "attestation-manifest"}) == "buildkit-attestation"
    assert classify(artifact_type="application/x-something") == "unknown"
    assert tag_subject("sha256-" + "a" * 64 + ".sig") == ("sha256:" + "a" * 64, "sig")
    assert tag_subject("latest") is None and tag_subject("sha256-abc") is None


def test_a_cosign_signature_on_one_child_shows_as_signed_on_that_platform_only(
        signed_arm64, client, django_capture_on_commit_callbacks):
    running, registry, images, signature, sbom = signed_arm64
    with running.client() as rc, django_capture_on_commit_callbacks(execute=True):
        repository_scan(client=rc, registry=registry, name="team/app")
    attached = {(r.subject, r.kind, r.source) for r in Referrer.objects.all()}
    assert attached == {(images[1].digest, "cosign-signature", "cosign-tag"),
                        (images[0].digest, "sbom-spdx", "tag-schema")}
    # Signature tags are no images: no required_missing for them.
    assert not Event.objects.filter(kind="required_missing").exists()

    client.force_login(User.objects.create_user("vera"))
    coverage = client.get("/coverage?registry=signed&format=json").json()
    assert [(r["tag"], r["signed"]) for r in coverage["rows"]] == [("latest", ["linux/arm64"])]
    api = client.get("/api/v1/coverage?registry=signed&unsigned=1").json()
    assert [(r["repository"], r["signed"]) for r in api["rows"]] == [("team/app", ["linux/arm64"])]
    lacking = client.get("/coverage?registry=signed&unsigned=1").content.decode()
    assert 'class="signed"' in lacking and "team/app" in lacking
    tags = client.get("/registries/signed/r/team/app/").content.decode()
    assert "sha256-" not in tags  # grouped under their subject, not listed as tags
    page = client.get("/registries/signed/r/team/app/t/latest").content.decode()
    rows = page.split('<table class="grid referrers">', 1)[1].split("</table>", 1)[0].split("<tr>")[2:]
    assert "this index" in rows[0] and "not signed" in rows[0]  # the list itself carries nothing
    by_platform = {row.split('class="chip">', 1)[1].split("<", 1)[0]: row for row in rows[1:]}
    assert "cosign-signature" in by_platform["linux/arm64"] and ">signed<" in by_platform["linux/arm64"]
    assert "sbom-spdx" in by_platform["linux/amd64"] and "not signed" in by_platform["linux/amd64"]


def test_a_signature_gone_records_signature_lost(signed_arm64, django_capture_on_commit_callbacks):
    running, registry, images, signature, _ = signed_arm64
    with running.client() as rc:
        repository_scan(client=rc, registry=registry, name="team/app")
        rc.request("DELETE", f"/v2/team/app/manifests/{signature}", op="DELETE manifest", ok=(202,))
        with django_capture_on_commit_callbacks(execute=True):
            repository_scan(client=rc, registry=registry, name="team/app")
    assert not Referrer.objects.filter(kind="cosign-signature").exists()
    event = Event.objects.get(kind="signature_lost")
    assert (event.tag, event.platforms, event.new_digest) == ("latest", ["linux/arm64"], images[1].digest)
    assert "cosign-signature" in event.detail
    with running.client() as rc:  # an SBOM gone counts too
        index = rc.head_manifest("team/app", referrer_tag(images[0].digest)).digest
        rc.request("DELETE", f"/v2/team/app/manifests/{index}", op="DELETE manifest", ok=(202,))
        with django_capture_on_commit_callbacks(execute=True):
            repository_scan(client=rc, registry=registry, name="team/app")
    sbom_lost = Event.objects.filter(kind="signature_lost").exclude(pk=event.pk).get()
    assert sbom_lost.platforms == ["linux/amd64"] and "sbom-spdx" in sbom_lost.detail


@pytest.fixture
def api_registry():
    server = ReferrersRegistry()
    yield server
    server.stop()


def _api_image(server: ReferrersRegistry, platform: Platform) -> dict:
    layer = server.blob(f"layer {platform.normalized}".encode())
    config = server.blob(json.dumps({"os": platform.os, "architecture": platform.architecture,
                                     "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    return server.manifest("team/app", {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                        "config": {"mediaType": OCI_CONFIG, **config},
                                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]})


def test_the_referrers_api_is_read_where_served(api_registry, db, settings):
    """A small server of our own (tests/harness/referrers_server.py) serves the OCI 1.1 API that
    Distribution 2.8 lacks."""
    settings.REFERRERS_API = True
    amd64, arm64 = _api_image(api_registry, AMD64), _api_image(api_registry, ARM64)
    index = api_registry.manifest("team/app", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**amd64, "platform": {"os": "linux", "architecture": "amd64"}},
        {**arm64, "platform": {"os": "linux", "architecture": "arm64"}}]}, tag="v1")
    empty = api_registry.blob(b"{}")
    api_registry.manifest("team/app", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": EMPTY, **empty},
        "layers": [{"mediaType": "application/jose+json", **api_registry.blob(b"jws")}], "subject": amd64})
    registry = Registry.objects.create(name="api", url=api_registry.url, insecure=True)
    with registry_client_for(registry) as client:
        answer = referrers_get(client, "team/app", amd64["digest"])
        assert [(r.artifact_type, r.source) for r in answer] == [("application/vnd.cncf.notary.signature",
                                                                   "referrers-api")]
        assert referrers_get(client, "team/app", index["digest"]) == []
        repository_scan(client=client, registry=registry, name="team/app")
        assert client.counters["GET referrers"] >= 2  # asked about what it saw first: the index and its platforms
    assert {(r.subject, r.kind, r.source) for r in Referrer.objects.all()} == {
        (amd64["digest"], "notation-signature", "referrers-api")}
    assert Tag.objects.get(name="v1").platforms == ["linux/amd64", "linux/arm64"]


def registry_client_for(registry: Registry):
    from manifests.services.registries import registry_client

    return registry_client(registry=registry)


def test_distribution_serves_no_referrers_api_and_the_scan_asks_once_then_stops(signed_arm64, settings):
    settings.REFERRERS_API = True
    running, registry, images, _, _ = signed_arm64
    with running.client() as rc:
        assert referrers_get(rc, "team/app", images[0].digest) is None
        rc.counters.clear()
        repository_scan(client=rc, registry=registry, name="team/app")
        assert rc.counters["GET referrers"] == 1
    assert Referrer.objects.filter(kind="cosign-signature").count() == 1  # the tag schema still tells


def test_a_childs_signature_survives_into_an_assembled_list(fresh_registry, db, client):
    """Assembling copies each kept child into the target repository; its cosign signature goes with it,
    so `cosign verify target@<child digest>` finds it there."""
    from manifests.jobs import job_create, job_run
    from manifests.models import Job
    from registry.assemble import SourceSpec

    running = fresh_registry("anonymous")
    with running.client() as rc:
        image_push(rc, repository="src/amd64", tag="latest", platform=AMD64, oci=True)
        arm64 = image_push(rc, repository="src/arm64", tag="latest", platform=ARM64, oci=True)
        cosign_signature_push(rc, "src/arm64", arm64.digest)
    registry = Registry.objects.create(name="carry", url=running.url, insecure=True)
    with running.client() as rc:
        for name in ("src/amd64", "src/arm64"):
            repository_scan(client=rc, registry=registry, name=name)
    pusher = User.objects.create_superuser("pat")
    client.force_login(pusher)
    preview = client.post("/build/preview", {"registry": "carry", "target": "username/test:latest", "format": "auto",
                                             "e_key": ["a", "b"], "e_ref": ["src/amd64:latest", "src/arm64:latest"]})
    carried = preview.content.decode().split('<div class="carried">', 1)[1].split("</div>", 1)[0]
    assert "cosign-signature" in carried and arm64.digest in carried and "src/arm64" in carried
    job = job_create(kind=Job.KIND_PUSH, registry=registry, target="username/test:latest", params={
        "sources": [SourceSpec.from_json({"reference": r}).to_json() for r in ("src/amd64:latest", "src/arm64:latest")],
        "format": "auto", "annotations": {}, "expect_digest": None, "preview_digest": None})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert [(r["kind"], r["subject"]) for r in job.result["referrers"]] == [("cosign-signature", arm64.digest)]
    with running.client() as rc:
        signature = rc.get_manifest("username/test", referrer_tag(arm64.digest, "sig"))
        assert signature.layers[0].media_type == SIMPLESIGNING
        repository_scan(client=rc, registry=registry, name="username/test")
    rows = client.get("/coverage?registry=carry&format=json").json()["rows"]
    assert {(r["repository"], tuple(r["signed"])) for r in rows} == {
        ("src/amd64", ()), ("src/arm64", ("linux/arm64",)), ("username/test", ("linux/arm64",))}
    unsigned = client.get("/api/v1/coverage?registry=carry&unsigned=1").json()["rows"]
    assert [r["repository"] for r in unsigned] == ["src/amd64", "username/test"]  # src/arm64 is signed throughout


def test_a_rescan_that_changed_nothing_rewrites_no_referrer_row(signed_arm64):
    """The referrer rows come from tags and manifests, which did not change: they are left as they are."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    running, registry, images, signature, sbom = signed_arm64
    with running.client() as rc:
        repository_scan(client=rc, registry=registry, name="team/app")
        before = sorted(Referrer.objects.values_list("pk", "subject", "kind"))
        with CaptureQueriesContext(connection) as queries:
            repository_scan(client=rc, registry=registry, name="team/app")
    assert len(before) == 2 and sorted(Referrer.objects.values_list("pk", "subject", "kind")) == before
    writes = [q["sql"] for q in queries if '"manifests_referrer"' in q["sql"]
              and q["sql"].lstrip().upper().startswith(("INSERT", "DELETE", "UPDATE"))]
    assert not writes, writes
