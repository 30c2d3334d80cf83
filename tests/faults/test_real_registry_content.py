"""Hostile content a real Docker Distribution serves as readily as a hostile server.

Script in annotations, impossible creation dates, over-long config fields and
a read-only registry need no scripted server: Distribution stores whatever
manifest and config bytes it is given (it checks digests and that children
exist, never annotations, dates or architectures), and has a read-only mode.
So they are pushed here with the project's own registry client into the
harness's real registry and scanned or pushed to from there. What only the
scripted server can do (lie about digests, trickle, hang, loop its Links,
list names that break the grammar) stays in tests/faults/hostile/, which
says why per case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from manifests.models import Job, Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.services.push import push_submit
from manifests.services.registries import registry_client
from manifests.stack.distribution import RunningRegistry
from manifests.stack.ports import free_port
from registry.assemble import SourceSpec
from registry.images import image_push, index_push
from registry.platform import Platform
from tests.faults.hostile.content import SCRIPT
from tests.faults.hostile_checks import HOSTILE_MARKUP

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer"))
    return client


def _registry(running: RunningRegistry, name: str = "real") -> Registry:
    return Registry.objects.create(name=name, url=running.url, insecure=True)


def _scan(registry: Registry, repository: str) -> dict:
    with registry_client(registry=registry) as client:
        return repository_scan(client=client, registry=registry, name=repository)


def _tag(registry: Registry, repository: str, tag: str) -> Tag:
    return Tag.objects.get(repository__registry=registry, repository__name=repository, name=tag)


def _escaped(viewer, *urls: str) -> dict[str, str]:
    answers = {}
    for url in urls:
        response = viewer.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = response.content.decode()
        if not url.startswith("/api/"):
            for markup in HOSTILE_MARKUP:
                assert markup not in body, f"{url} shows {markup!r} unescaped"
        answers[url] = body
    return answers


@pytest.mark.django_db
def test_case_script_in_annotations_from_a_real_registry_is_escaped_and_kept_verbatim_in_the_api(
        registry_anonymous, viewer):
    with registry_anonymous.client() as client:
        child = image_push(client, repository="real-faults/html", tag=None, platform=AMD64, oci=True)
        index_push(client, repository="real-faults/html", tag="ok",
                   children=[child.descriptor(annotations={"org.opencontainers.image.title": SCRIPT})],
                   annotations={"org.opencontainers.image.description": f"<img src=x onerror=alert(1)> {SCRIPT}",
                                SCRIPT: "a key too"})
    registry = _registry(registry_anonymous)
    assert _scan(registry, "real-faults/html")["errors"] == 0
    ok = _tag(registry, "real-faults/html", "ok")
    assert ok.error == "" and ok.platforms == ["linux/amd64"]
    assert ok.manifest.children.get().annotations == {"org.opencontainers.image.title": SCRIPT}
    page = "/registries/real/r/real-faults/html/t/ok"
    api = "/api/v1/registries/real/repositories/real-faults/html/tags/ok"
    answers = _escaped(viewer, "/", "/registries/real/", "/registries/real/r/real-faults/html/", page, api)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answers[page]
    assert "&lt;img src=x onerror=alert(1)&gt;" in answers[page]
    assert json.loads(answers[api])["digest"] == ok.digest


@pytest.mark.django_db
def test_case_impossible_creation_dates_from_a_real_registry_are_dropped_and_the_image_kept(
        registry_anonymous, viewer):
    # "2024-13-45T99:99:99Z" is no date, and year 1 at +14:00 is before any the database holds.
    with registry_anonymous.client() as client:
        for tag, created in (("bad-created", "2024-13-45T99:99:99Z"),
                             ("overflow-created", "0001-01-01T00:00:00+14:00")):
            image_push(client, repository="real-faults/dates", tag=tag, platform=AMD64, created=created)
    registry = _registry(registry_anonymous)
    assert _scan(registry, "real-faults/dates")["errors"] == 0
    for tag in ("bad-created", "overflow-created"):
        dated = _tag(registry, "real-faults/dates", tag)
        assert dated.error == "" and dated.created is None and dated.platforms == ["linux/amd64"], tag
    _escaped(viewer, "/registries/real/r/real-faults/dates/", "/registries/real/r/real-faults/dates/t/bad-created",
             "/api/v1/registries/real/repositories/real-faults/dates/tags/overflow-created")


@pytest.mark.django_db
def test_case_over_long_config_fields_from_a_real_registry_never_reach_the_database(registry_anonymous, viewer):
    # PostgreSQL refuses a value longer than its column, and would fail the whole repository's transaction.
    with registry_anonymous.client() as client:
        image_push(client, repository="real-faults/fields", tag="long-config",
                   platform=Platform("linux", "b" * 100, variant="v" * 100))
        image_push(client, repository="real-faults/fields", tag="ok", platform=ARM64)
    registry = _registry(registry_anonymous)
    assert _scan(registry, "real-faults/fields")["errors"] == 0
    long_config = _tag(registry, "real-faults/fields", "long-config")
    assert long_config.error == "" and long_config.platforms == []  # stored, without a platform
    assert _tag(registry, "real-faults/fields", "ok").platforms == ["linux/arm64"]
    _escaped(viewer, "/registries/real/r/real-faults/fields/", "/registries/real/r/real-faults/fields/t/long-config",
             "/api/v1/registries/real/repositories/real-faults/fields/tags/long-config")


@dataclass
class ReadOnlyRegistry(RunningRegistry):
    """The harness's registry, restartable in Distribution's `maintenance: readonly` mode."""

    read_only: bool = False

    def write_config(self) -> None:
        super().write_config()
        if self.read_only:
            text = self.config_path.read_text()
            marker = "  delete:\n    enabled: true\n"
            assert marker in text
            self.config_path.write_text(text.replace(
                marker, marker + "  maintenance:\n    readonly:\n      enabled: true\n"))


@pytest.mark.django_db(transaction=True)
def test_case_a_read_only_real_registry_refuses_a_push_with_its_own_message_and_the_worker_lives_on(
        celery_worker, wait_job, tmp_path, viewer):
    running = ReadOnlyRegistry(mode="anonymous", port=free_port(), folder=tmp_path / "read-only").start()
    try:
        with running.client() as client:
            image_push(client, repository="real-faults/app", tag="amd64", platform=AMD64)
            image_push(client, repository="real-faults/app", tag="arm64", platform=ARM64)
        running.stop()
        running.read_only = True
        running.start()
        registry = _registry(running)
        with registry_client(registry=registry) as client:
            repository_scan(client=client, registry=registry, name="real-faults/app")
        job = push_submit(registry=registry, target="real-faults/list:v1", fmt="auto", annotations={},
                          sources=[SourceSpec("real-faults/app:amd64"), SourceSpec("real-faults/app:arm64")],
                          expect_digest="")
        job = wait_job(job.pk)
        assert job.status == Job.STATUS_FAILED
        # Distribution's read-only mode answers a plain-text 405 with `Allow: GET, HEAD`.
        assert job.error == ("registry error: UNSUPPORTED: HTTP 405 Method Not Allowed: the registry allows "
                             "only GET, HEAD here (it may be read-only)"), job.error
        assert celery_worker.process.poll() is None
        assert not Repository.objects.filter(registry=registry, name="real-faults/list").exists()
        answers = _escaped(viewer, f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}")
        assert job.error.split(": ", 1)[1] in answers[f"/jobs/{job.pk}/"]
        # Reads still work: the sources are there.
        with running.client() as client:
            assert client.head_manifest("real-faults/app", "amd64").digest
    finally:
        running.shutdown()
