"""The canonical scenario through the Celery worker, checked by skopeo."""

from __future__ import annotations

import json
import logging

import pytest

from manifests.models import PushRecord, Registry
from manifests.services.push import push_submit
from registry.assemble import SourceSpec
from registry.images import attested_index_push, image_push
from registry.platform import Platform
from tests.harness.secrets import assert_never_logged


def _registry_row(running) -> Registry:
    username, password = running.credentials()
    row = Registry(name=f"reg-{running.mode}", url=running.url, insecure=True,
                   auth=Registry.AUTH_BASIC if username else Registry.AUTH_ANONYMOUS, username=username)
    if password:
        row.set_secret(password)
    row.save()
    return row


@pytest.mark.django_db(transaction=True)
def test_it_assembles_a_list_from_two_repositories_and_skopeo_pulls_each_platform(
    any_registry, celery_worker, wait_job, skopeo, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    with any_registry.client() as client:
        image_push(client, repository="username/x8664-test", tag="latest", platform=Platform("linux", "amd64"))
        image_push(client, repository="username/arm64v8-test", tag="latest",
                   platform=Platform("linux", "arm64", "v8"))
    registry = _registry_row(any_registry)

    job = push_submit(registry=registry, target="username/test:latest", fmt="auto", annotations={},
                      expect_digest=None, sources=[SourceSpec("username/x8664-test:latest"),
                                                       SourceSpec("username/arm64v8-test:latest")])
    job = wait_job(job.pk)

    assert job.status == "succeeded", (job.error, job.steps, celery_worker.log()[-3000:])
    ref = f"docker://{any_registry.host}/username/test:latest"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", *any_registry.skopeo_creds(), ref).stdout
    listing = json.loads(raw)
    assert listing["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    platforms = {(m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant", ""))
                 for m in listing["manifests"]}
    assert platforms == {("linux", "amd64", ""), ("linux", "arm64", "v8")}
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        extra = ["--override-variant", variant] if variant else []
        skopeo("copy", "--src-tls-verify=false", *[c.replace("--creds", "--src-creds") for c in
                                                    any_registry.skopeo_creds()],
               "--override-os", "linux", "--override-arch", arch, *extra, ref, f"oci:{tmp_path / arch}")
        index = json.loads((tmp_path / arch / "index.json").read_text())
        assert len(index["manifests"]) == 1
    record = PushRecord.objects.get(job=job)
    assert record.new_digest == job.digest
    assert record.verified is True and record.verify_error == ""
    # Credentials never reach a log: the worker's (INFO, as it runs) nor this process's, at any level.
    assert_never_logged(any_registry, celery_worker.log(), caplog.text, also=(registry.secret_encrypted,))
    assert job.digest == "sha256:" + __import__("hashlib").sha256(raw.encode()).hexdigest()


# -- requests per push: the floor is one HEAD of the tag (the concurrency check), one mount per
# distinct blob, one PUT per child and one PUT of the list; ours adds one HEAD of the tag after the
# PUT (the read-back). Planning reads the scanned inventory, not the registry.

TEN_PLATFORMS = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7"),
                 Platform("linux", "arm", "v6"), Platform("linux", "arm", "v5"), Platform("linux", "386"),
                 Platform("linux", "ppc64le"), Platform("linux", "s390x"), Platform("linux", "riscv64"),
                 Platform("linux", "mips64le")]


def _scanned(running, name: str, repositories: list[str]) -> Registry:
    from manifests.scan.repository import repository_scan

    registry = Registry.objects.create(name=name, url=running.url, insecure=True, watch="\n".join(repositories))
    with running.client() as client:
        for repository in repositories:
            repository_scan(client=client, registry=registry, name=repository)
    return registry


def _push_inline(registry: Registry, target: str, sources: list[str]):
    from manifests import jobs
    from manifests.jobs import job_run
    from manifests.models import Job

    job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target=target, params={
        "sources": [SourceSpec(s).to_json() for s in sources], "format": "auto", "annotations": {},
        "expect_digest": ""})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _assert_whole(client, repository: str, tag: str, digest: str) -> None:
    """The guarantee, checked from outside: the tag names the digest, every child resolves."""
    pushed = client.get_manifest(repository, tag)
    assert pushed.digest == digest
    for child in pushed.children:
        assert client.manifest_exists(repository, child.digest), child.digest


@pytest.mark.django_db
def test_the_seed_push_into_a_new_repository_costs_nine_registry_requests(registry_anonymous):
    with registry_anonymous.client() as client:
        image_push(client, repository="floor/x8664-test", tag="latest", platform=Platform("linux", "amd64"))
        image_push(client, repository="floor/arm64v8-test", tag="latest", platform=Platform("linux", "arm64", "v8"))
    registry = _scanned(registry_anonymous, "floor", ["floor/x8664-test", "floor/arm64v8-test"])

    job = _push_inline(registry, "floor/test:latest", ["floor/x8664-test:latest", "floor/arm64v8-test:latest"])

    assert job.status == "succeeded", job.error
    # The floor is 8: HEAD of the tag, 4 mounts, 2 child PUTs, the list's PUT; plus one HEAD reading the tag back.
    assert job.result["requests"] == {"HEAD manifest": 2, "POST mount": 4, "PUT manifest": 3}
    assert PushRecord.objects.get(job=job).verified is True
    with registry_anonymous.client() as client:
        _assert_whole(client, "floor/test", "latest", job.digest)
    from manifests.models import Tag

    tag = Tag.objects.get(repository__registry=registry, repository__name="floor/test", name="latest")
    assert (tag.digest, tag.platforms) == (job.digest, ["linux/amd64", "linux/arm64"])


@pytest.mark.django_db
def test_a_ten_platform_list_with_attestations_into_a_new_repository_is_within_a_tenth_of_the_floor(
        registry_anonymous):
    with registry_anonymous.client() as client:
        index, images, attestations = attested_index_push(client, repository="floor10/src", tag="1.0",
                                                          platforms=TEN_PLATFORMS)
        blobs = {blob.digest for m in images + attestations
                 for blob in client.get_manifest("floor10/src", m.digest).blobs}
    registry = _scanned(registry_anonymous, "floor10", ["floor10/src"])

    job = _push_inline(registry, "floor10/list:1.0", ["floor10/src:1.0"])

    assert job.status == "succeeded", job.error
    children = len(images) + len(attestations)
    floor = 1 + len(blobs) + children + 1  # HEAD of the tag, a mount per distinct blob, PUTs
    requests = job.result["requests"]
    assert requests == {"HEAD manifest": 2, "POST mount": len(blobs), "PUT manifest": children + 1}
    assert sum(requests.values()) == floor + 1 <= 1.1 * floor
    with registry_anonymous.client() as client:
        _assert_whole(client, "floor10/list", "1.0", job.digest)
