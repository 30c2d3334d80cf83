"""The canonical scenario through the Celery worker, checked by skopeo."""

from __future__ import annotations

import json
import logging

import pytest

from manifests.demo import image_push
from manifests.models import PushRecord, Registry
from manifests.services.assemble import SourceSpec
from manifests.services.push import push_job_create
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

    job = push_job_create(registry=registry, target="username/test:latest", fmt="auto", annotations={},
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
