"""Assembling lists against a real registry: amend, flatten, refuse, detect a moved tag, roll back."""

from __future__ import annotations

import json

import pytest

from manifests.jobs import job_create, job_run
from manifests.models import PushRecord, Registry
from registry import errors
from registry.assemble import AssemblyInvalid, SourceSpec, TagMoved, list_plan, list_push
from registry.images import attested_index_push, image_push, index_push
from registry.mediatypes import DOCKER_LIST, OCI_INDEX
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
ARMV7 = Platform("linux", "arm", "v7")


def _platforms(raw: bytes) -> list[str]:
    data = json.loads(raw)
    return [Platform.from_json(m["platform"]).normalized for m in data["manifests"]
            if m.get("annotations", {}).get("vnd.docker.reference.type") != "attestation-manifest"]


def test_amend_adds_a_platform_to_an_existing_list_and_keeps_its_attestations(registry_basic):
    with registry_basic.client() as client:
        index, images, attestations = attested_index_push(client, repository="amend/app", tag="1.0",
                                                          platforms=[AMD64, ARM64])
        image_push(client, repository="amend/armv7-build", tag="1.0", platform=ARMV7)
        sources = [SourceSpec("amend/app:1.0"), SourceSpec("amend/armv7-build:1.0")]
        plan = list_plan(client=client, target="amend/app:1.0", sources=sources)
        result = list_push(client=client, plan=plan, expect_digest=index.digest)
        pushed = client.get_manifest("amend/app", "1.0")
    assert result.digest == pushed.digest == plan.digest
    assert _platforms(pushed.raw) == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    kept = {c.digest for c in pushed.children if c.is_attestation}
    assert kept == {a.digest for a in attestations}
    assert pushed.media_type == OCI_INDEX  # attestations are OCI manifests: never a Docker list


def test_amend_drops_a_platform_and_its_attestation(registry_anonymous):
    with registry_anonymous.client() as client:
        index, images, attestations = attested_index_push(client, repository="drop/app", tag="1.0",
                                                          platforms=[AMD64, ARM64, ARMV7])
        plan = list_plan(client=client, target="drop/app:1.0", sources=[
            SourceSpec(f"drop/app@{index.digest}", select=images[0].digest),
            SourceSpec(f"drop/app@{index.digest}", select=images[2].digest)])
        list_push(client=client, plan=plan, expect_digest=index.digest)
        pushed = client.get_manifest("drop/app", "1.0")
    assert _platforms(pushed.raw) == ["linux/amd64", "linux/arm/v7"]
    subjects = {c.attestation_subject for c in pushed.children if c.is_attestation}
    assert subjects == {images[0].digest, images[2].digest}


def test_an_index_source_with_a_platform_contributes_that_child_and_its_attestation_only(registry_token, skopeo,
                                                                                        tmp_path):
    with registry_token.client() as client:
        index, images, attestations = attested_index_push(client, repository="flat/src", tag="multi",
                                                          platforms=[AMD64, ARM64])
        other = image_push(client, repository="flat/other", tag="v1", platform=ARMV7)
        plan = list_plan(client=client, target="flat/dst:v1", sources=[
            SourceSpec("flat/src:multi", platform="linux/arm64"), SourceSpec("flat/other:v1")])
        list_push(client=client, plan=plan, expect_digest="")
    data = json.loads(plan.raw)
    digests = [m["digest"] for m in data["manifests"]]
    assert digests == [images[1].digest, other.digest, attestations[1].digest]
    # An independent client can pull every platform and the attestation from the target repository.
    ref = f"docker://{registry_token.host}/flat/dst:v1"
    creds = [c.replace("--creds", "--src-creds") for c in registry_token.skopeo_creds()]
    for arch, variant in (("arm64", "v8"), ("arm", "v7")):
        skopeo("copy", "--src-tls-verify=false", *creds, "--override-arch", arch, "--override-variant", variant,
               ref, f"oci:{tmp_path / arch}")
    skopeo("inspect", "--raw", "--tls-verify=false", *registry_token.skopeo_creds(),
           f"docker://{registry_token.host}/flat/dst@{attestations[1].digest}")


def test_two_sources_with_the_same_platform_are_refused_before_anything_is_pushed(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="dup/a", tag="v1", platform=ARM64)
        image_push(client, repository="dup/b", tag="v1", platform=Platform("linux", "aarch64"))
        client.counters.clear()
        with pytest.raises(AssemblyInvalid) as caught:
            list_plan(client=client, target="dup/list:v1", sources=[SourceSpec("dup/a:v1"), SourceSpec("dup/b:v1")])
        assert "linux/arm64 is already provided by source 1" in caught.value.errors["sources.1"][0]
        assert not any(op.startswith(("PUT", "POST")) for op in client.counters)
        with pytest.raises(errors.NotFound):
            client.head_manifest("dup/list", "v1")


def test_windows_images_differing_by_os_version_are_not_duplicates(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="win/a", tag="2022",
                   platform=Platform("windows", "amd64", os_version="10.0.20348.2227"))
        image_push(client, repository="win/a", tag="2019",
                   platform=Platform("windows", "amd64", os_version="10.0.17763.5329"))
        plan = list_plan(client=client, target="win/a:latest", sources=[SourceSpec("win/a:2022"),
                                                                        SourceSpec("win/a:2019")])
    assert plan.media_type == DOCKER_LIST
    versions = [m["platform"]["os.version"] for m in json.loads(plan.raw)["manifests"]]
    assert versions == ["10.0.20348.2227", "10.0.17763.5329"]


@pytest.mark.parametrize(("platform", "message"), [
    ("unknown/unknown", "unknown/unknown is not a platform"),
    ("linux", "is not a platform"),
])
def test_a_bad_platform_is_refused_with_a_message_for_that_source(registry_anonymous, platform, message):
    with registry_anonymous.client() as client:
        image_push(client, repository="bad/platform", tag="v1", platform=AMD64)
        with pytest.raises(AssemblyInvalid) as caught:
            list_plan(client=client, target="bad/list:v1", sources=[SourceSpec("bad/platform:v1", platform=platform)])
    assert message in " ".join(caught.value.errors["sources.0"])


def test_a_docker_list_refuses_oci_children_and_annotations(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="fmt/oci", tag="v1", platform=AMD64, oci=True)
        with pytest.raises(AssemblyInvalid) as caught:
            list_plan(client=client, target="fmt/list:v1", sources=[SourceSpec("fmt/oci:v1")], fmt="docker",
                      annotations={"org.opencontainers.image.source": "https://example.invalid/x"})
    assert "format" in caught.value.errors and "annotations" in caught.value.errors


def test_a_source_in_another_registry_is_refused(registry_anonymous):
    with registry_anonymous.client() as client:
        with pytest.raises(AssemblyInvalid) as caught:
            list_plan(client=client, target="x/list:v1", sources=[SourceSpec("ghcr.io/someone/image:v1")])
    assert "names a registry host" in caught.value.errors["sources.0"][0]


def test_a_tag_moved_since_the_preview_stops_the_push(registry_anonymous):
    with registry_anonymous.client() as client:
        first = image_push(client, repository="moved/list", tag="v1", platform=AMD64)
        arm = image_push(client, repository="moved/arm", tag="v1", platform=ARM64)
        plan = list_plan(client=client, target="moved/list:v1", sources=[SourceSpec(f"moved/list@{first.digest}"),
                                                                         SourceSpec("moved/arm:v1")])
        # Someone else pushes to the tag between the preview and the push.
        image_push(client, repository="moved/list", tag="v1", platform=AMD64, content="someone else")
        now = client.head_manifest("moved/list", "v1").digest
        with pytest.raises(TagMoved) as caught:
            list_push(client=client, plan=plan, expect_digest=first.digest)
        assert caught.value.actual == now
        assert client.head_manifest("moved/list", "v1").digest == now  # untouched
        # Confirmed overwrite (no expectation) goes through.
        result = list_push(client=client, plan=plan, expect_digest=None)
        assert client.head_manifest("moved/list", "v1").digest == result.digest
        assert arm.digest in {c.digest for c in client.get_manifest("moved/list", result.digest).children}


@pytest.mark.django_db
def test_rollback_puts_the_earlier_list_back_and_refuses_when_a_child_is_gone(fresh_registry):
    running = fresh_registry("anonymous")
    registry = Registry.objects.create(name="rb", url=running.url, insecure=True)
    with running.client() as client:
        one = image_push(client, repository="rb/app", tag=None, platform=AMD64)
        two = image_push(client, repository="rb/app", tag=None, platform=ARM64)
        first = index_push(client, repository="rb/app", tag="v1", children=[one.descriptor()])
        second = index_push(client, repository="rb/app", tag="v1", children=[one.descriptor(), two.descriptor()])
    record = PushRecord.objects.create(registry=registry, repository="rb/app", tag="v1", new_digest=first.digest,
                                       media_type=first.media_type,
                                       raw=running.client().get_manifest("rb/app", first.digest).raw)
    job = job_create(kind="rollback", registry=registry, target="rb/app:v1", params={"record": record.pk})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    with running.client() as client:
        assert client.head_manifest("rb/app", "v1").digest == first.digest
        assert PushRecord.objects.filter(job=job, old_digest=second.digest, new_digest=first.digest).exists()
        # Delete the only child of the first list: a rollback to it must refuse.
        client.request("DELETE", f"/v2/rb/app/manifests/{one.digest}", op="DELETE manifest", ok=(202,))
        index_push(client, repository="rb/app", tag="v1", children=[two.descriptor()])
    again = job_create(kind="rollback", registry=registry, target="rb/app:v1", params={"record": record.pk})
    job_run(job_id=again.pk)
    again.refresh_from_db()
    assert again.status == "failed" and one.digest in again.error
