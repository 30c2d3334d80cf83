"""Scanning a real registry: what is stored, and what it costs in requests."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from manifests.jobs import job_create, job_run
from manifests.management.commands.seed_demo import seed
from manifests.models import Manifest, Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from registry.images import attested_index_push, image_push, index_push
from registry.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@pytest.fixture
def seeded(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        seed(client)
    registry = Registry.objects.create(name="demo", url=running.url, insecure=True)
    return running, registry


def _scan(registry: Registry):
    job = job_create(kind="scan", registry=registry, target=registry.name, params={})
    job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()
    return job


def test_a_scan_stores_every_shape_of_the_demo_registry(seeded):
    running, registry = seeded
    job = _scan(registry)
    assert job.status == "succeeded", job.error
    webapp = Tag.objects.get(repository__name="demo/webapp", name="1.4")
    assert webapp.kind == "index"
    assert webapp.platforms == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    children = list(webapp.manifest.children.all())
    assert sum(c.is_attestation for c in children) == 3
    assert all(c.subject in {d.digest for d in children} for c in children if c.is_attestation)
    assert webapp.size > 0 and webapp.created is not None
    latest = Tag.objects.get(repository__name="demo/webapp", name="latest")
    assert latest.digest == webapp.digest
    tools = Tag.objects.get(repository__name="demo/tools", name="latest")
    assert tools.platforms == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
    windows = Tag.objects.get(repository__name="demo/windows-app", name="latest")
    assert sorted(windows.platform_rows.values_list("os_version", flat=True)) == ["10.0.17763.5329",
                                                                                   "10.0.20348.2227"]
    assert Tag.objects.get(repository__name="username/arm64v8-test").platforms == ["linux/arm64"]
    assert "linux/arm64" not in Tag.objects.get(repository__name="demo/legacy").platforms
    repo = Repository.objects.get(name="demo/webapp")
    assert repo.tag_count == 3 and repo.list_count == 3


def test_a_rescan_costs_one_head_per_tag_and_nothing_else(seeded):
    running, registry = seeded
    _scan(registry)
    manifests_before = Manifest.objects.count()
    job = _scan(registry)
    requests = job.result["requests"]
    tags = Tag.objects.filter(repository__registry=registry).count()
    assert requests.get("HEAD manifest") == tags
    assert requests.get("GET manifest", 0) == 0 and requests.get("GET blob", 0) == 0
    assert Manifest.objects.count() == manifests_before


def test_a_first_scan_costs_one_get_per_tag_and_per_unknown_digest(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        one = image_push(client, repository="cost/a", tag="v1", platform=AMD64)
        client.put_manifest("cost/a", "v2", client.get_manifest("cost/a", one.digest).raw, one.media_type)
    registry = Registry.objects.create(name="cost", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="cost/a")
        # Two tags, one manifest, one config: no HEADs on a first sight.
        assert client.counters["GET manifest"] == 2
        assert client.counters["GET blob"] == 1
        assert client.counters["HEAD manifest"] == 0


def test_a_missing_child_is_recorded_and_the_rest_still_shows(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        index, images, _ = attested_index_push(client, repository="gone/child", tag="v1", platforms=[AMD64, ARM64])
        client.request("DELETE", f"/v2/gone/child/manifests/{images[1].digest}", op="DELETE manifest",
                       ok=(202,))
    registry = Registry.objects.create(name="gone", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="gone/child")
    tag = Tag.objects.get(name="v1")
    assert tag.missing == [images[1].digest]
    assert tag.platforms == ["linux/amd64", "linux/arm64"]  # the list still says what it points at
    assert tag.error == ""


def test_a_child_deleted_after_its_list_was_scanned_is_found_by_checking_children(fresh_registry, db):
    """A clean-up of "untagged" manifests deletes a list's child; the list's
    digest does not change, so a re-scan (one HEAD per tag) cannot see it.
    Checking children can, at one HEAD per distinct child, and sees it come back."""
    running = fresh_registry("anonymous")
    with running.client() as client:
        index, images, attestations = attested_index_push(client, repository="clean/up", tag="v1",
                                                          platforms=[AMD64, ARM64])
        index_push(client, repository="clean/up", tag="v1-again", children=[i.descriptor() for i in images])
    registry = Registry.objects.create(name="cleanup", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="clean/up")
        client.request("DELETE", f"/v2/clean/up/manifests/{images[1].digest}", op="DELETE manifest", ok=(202,))

        client.counters.clear()
        repository_scan(client=client, registry=registry, name="clean/up")
        assert Tag.objects.get(name="v1").missing == []  # the floor's blind spot
        assert dict(client.counters) == {"GET tags": 1, "HEAD manifest": 2}

        client.counters.clear()
        counts = repository_scan(client=client, registry=registry, name="clean/up", verify_children=True)
        children = {i.digest for i in images} | {a.digest for a in attestations}
        assert counts["children_checked"] == len(children) and counts["children_missing"] == 1
        assert client.counters["HEAD manifest"] == 2 + len(children)  # the tags, then each child once
        assert "GET manifest" not in client.counters
        assert Tag.objects.get(name="v1").missing == [images[1].digest]
        assert Tag.objects.get(name="v1-again").missing == [images[1].digest]

        again = image_push(client, repository="clean/up", tag=None, platform=ARM64, oci=True)
        assert again.digest == images[1].digest  # the same image, pushed again
        repository_scan(client=client, registry=registry, name="clean/up", verify_children=True)
    assert Tag.objects.get(name="v1").missing == [] and Tag.objects.get(name="v1-again").missing == []


def test_check_children_from_the_tag_page_queues_a_verifying_scan(seeded, client, django_user_model, monkeypatch):
    from manifests import jobs
    from manifests.services import queue

    _, registry = seeded
    _scan(registry)
    sent = []
    monkeypatch.setattr(queue, "queue_available", lambda: True)
    monkeypatch.setattr(jobs, "job_send", sent.append)
    from django.contrib.auth.models import Group

    pusher = django_user_model.objects.create_user("pusher")
    pusher.groups.add(Group.objects.get(name="pusher"))  # a viewer may not start registry work
    client.force_login(pusher)
    page = client.get("/registries/demo/r/demo/webapp/t/1.4").content.decode()
    assert "Check children" in page
    assert "Check children" not in client.get("/registries/demo/r/username/x8664-test/t/latest").content.decode()
    client.post("/registries/demo/scan", {"repository": "demo/webapp", "tag": "1.4", "verify": "1"})
    client.post("/registries/demo/scan", {"repository": "demo/webapp", "tag": "1.4"})
    assert [job.params["verify"] for job in sent] == [True, False]
    assert sent[0].params["tags"] == ["1.4"]
    job_run(inline=True, job_id=sent[0].pk)
    done = client.get(f"/jobs/{sent[0].pk}/").content.decode()
    assert "children checked 6, missing 0" in done
    assert 'href="/registries/demo/r/demo/webapp/t/1.4"' in done


def test_a_nested_index_contributes_its_platforms(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        inner, _, _ = attested_index_push(client, repository="nest/ed", tag="inner", platforms=[AMD64, ARM64])
        win = image_push(client, repository="nest/ed", tag=None, platform=Platform("windows", "amd64",
                                                                                    os_version="10.0.20348.1"))
        index_push(client, repository="nest/ed", tag="outer", children=[inner.descriptor(), win.descriptor()])
    registry = Registry.objects.create(name="nest", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="nest/ed")
    outer = Tag.objects.get(name="outer")
    assert outer.platforms == ["linux/amd64", "linux/arm64", "windows/amd64"]


@pytest.mark.django_db(transaction=True)
def test_scan_wait_runs_on_the_worker_and_prints_a_summary(fresh_registry, celery_worker, capsys):
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="cmd/scan", tag="v1", platform=AMD64)
    Registry.objects.create(name="cmd", url=running.url, insecure=True)
    call_command("scan", "cmd", "--wait", "--timeout", "60")
    out = capsys.readouterr().out
    assert "repositories: 1  tags: 1" in out
    assert "GET manifest: 1" in out
    assert Tag.objects.get(name="v1").platforms == ["linux/amd64"]


def test_an_artifact_is_stored_as_an_artifact_and_shown_as_what_it_is(fresh_registry, db):
    """A Helm chart pushed as an OCI artifact: no platform, kind artifact."""
    running = fresh_registry("anonymous")
    chart = b"apiVersion: v2\nname: demo\nversion: 0.1.0\n"
    config = b'{"name":"demo","version":"0.1.0"}'
    with running.client() as client:
        from registry.mediatypes import OCI_MANIFEST, sha256_digest

        for blob in (chart, config):
            client.upload_blob("charts/demo", sha256_digest(blob), blob)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": sha256_digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                        "digest": sha256_digest(chart), "size": len(chart)}]}).encode()
        client.put_manifest("charts/demo", "0.1.0", manifest, OCI_MANIFEST)
    registry = Registry.objects.create(name="charts", url=running.url, insecure=True)
    with running.client() as client:
        repository_scan(client=client, registry=registry, name="charts/demo")
        assert client.counters.get("GET blob", 0) == 0  # an artifact's config is not an image config: not fetched
    tag = Tag.objects.get(name="0.1.0")
    assert tag.kind == "artifact" and tag.platforms == []
    assert tag.manifest.artifact_type == "application/vnd.cncf.helm.config.v1+json"


def test_a_repository_with_more_than_1000_tags_is_scanned_whole(fresh_registry, db):
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="big/repo", tag="t0000", platform=AMD64)
        raw = client.get_manifest("big/repo", pushed.digest).raw
        for i in range(1, 1103):
            client.put_manifest("big/repo", f"t{i:04d}", raw, pushed.media_type)
    registry = Registry.objects.create(name="big", url=running.url, insecure=True)
    with running.client() as client:
        counts = repository_scan(client=client, registry=registry, name="big/repo")
    assert counts["tags"] == 1103 and counts["errors"] == 0
    assert Tag.objects.filter(repository__name="big/repo", digest=pushed.digest).count() == 1103
    assert Repository.objects.get(name="big/repo").tag_count == 1103


def test_a_rescan_picks_up_a_tag_pushed_to_a_new_digest(fresh_registry, db):
    running = fresh_registry("anonymous")
    registry = Registry.objects.create(name="moved", url=running.url, insecure=True)
    with running.client() as client:
        image_push(client, repository="moved/app", tag="v1", platform=AMD64)
        repository_scan(client=client, registry=registry, name="moved/app")
        second = image_push(client, repository="moved/app", tag="v1", platform=ARM64, content="new build")
        client.counters.clear()
        counts = repository_scan(client=client, registry=registry, name="moved/app", only_tags=["v1"])
        # One HEAD finds the move, one GET learns the manifest, one GET its config.
        assert dict(client.counters) == {"HEAD manifest": 1, "GET manifest": 1, "GET blob": 1}
    tag = Tag.objects.get(name="v1")
    assert counts["changed"] == 1 and tag.error == ""
    assert tag.digest == second.digest and tag.platforms == ["linux/arm64"]


def test_a_scan_tells_listeners_which_tags_appeared_or_moved(fresh_registry, db, django_capture_on_commit_callbacks):
    from manifests.signals import tags_moved

    running = fresh_registry("anonymous")
    with running.client() as client:
        one = image_push(client, repository="moves/a", tag="v1", platform=AMD64)
        image_push(client, repository="moves/a", tag="v2", platform=ARM64)
    registry = Registry.objects.create(name="moves", url=running.url, insecure=True)
    heard: list = []

    def listen(sender, repository, moves, **kwargs):
        heard.append((repository.name, sorted((m.tag, m.old_digest, m.new_digest) for m in moves)))

    tags_moved.connect(listen)
    try:
        with running.client() as client, django_capture_on_commit_callbacks(execute=True):
            repository_scan(client=client, registry=registry, name="moves/a")
        v2 = Tag.objects.get(repository__name="moves/a", name="v2").digest
        assert heard == [("moves/a", [("v1", "", one.digest), ("v2", "", v2)])]
        heard.clear()
        with running.client() as client, django_capture_on_commit_callbacks(execute=True):
            repository_scan(client=client, registry=registry, name="moves/a")  # nothing changed
            arm = client.get_manifest("moves/a", v2)
            client.put_manifest("moves/a", "v1", arm.raw, arm.media_type)
            repository_scan(client=client, registry=registry, name="moves/a")
        assert heard == [("moves/a", [("v1", one.digest, v2)])]
    finally:
        tags_moved.disconnect(listen)

