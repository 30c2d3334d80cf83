"""Two real Celery workers writing the inventory at once: whole-registry scans
racing pushes (each push re-scans the tag it wrote). Nothing may be lost,
doubled or left inconsistent, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models import Count

from manifests import jobs
from manifests.jobs import job_create
from manifests.management.commands.seed_demo import seed
from manifests.models import Job, Manifest, ManifestChild, PushRecord, Registry, Repository, Tag, TagPlatform
from manifests.scan import fetching
from manifests.scan import repository as scan_repository
from manifests.scan.fanout import scan_submit
from manifests.services.push import push_submit
from manifests.stack.workers import worker_start
from registry import RegistryClient
from registry.assemble import SourceSpec
from registry.images import image_push
from registry.mediatypes import parse_manifest
from registry.platform import Platform
from tests.conftest import SESSION_DIR

# Distinct targets; some share a repository that does not exist yet (several
# first writes of one repository at once), some land in seeded repositories
# that the scans are walking, and two pairs push the same list (one digest
# stored by two jobs at once).
PUSHES = [
    ("par/multi:a", ["username/x8664-test:latest", "username/arm64v8-test:latest"]),
    ("par/multi:b", ["demo/cli:latest", "demo/cli:2.0-arm64"]),
    ("par/multi:c", ["username/x8664-test:latest", "username/arm64v8-test:latest"]),
    ("demo/webapp:par", ["demo/webapp:1.4"]),
    ("demo/tools:par", ["demo/legacy:latest", "demo/cli:2.0-arm64"]),
    ("par/other:x", ["demo/windows-app:ltsc2022", "username/arm64v8-test:latest"]),
    ("par/other:y", ["demo/legacy:latest", "demo/cli:2.0-arm64"]),
]
SCANS = 4


def _tracebacks(*logs: str) -> str:
    """The ERROR records of worker logs, each with its traceback, for a failure message."""
    found, keep = [], False
    for line in "\n".join(logs).splitlines():
        if line.startswith("["):  # a new log record
            keep = "ERROR/" in line
        if keep:
            found.append(line)
    return "\n".join(found)[-8000:] or "no ERROR in the worker logs"


def _duplicates(model, *fields: str) -> list[dict]:
    return list(model.objects.values(*fields).annotate(n=Count("id")).filter(n__gt=1))


@pytest.mark.django_db(transaction=True)
def test_parallel_scans_and_pushes_on_two_workers_lose_and_double_nothing(
    fresh_registry, worker_env, celery_worker, wait_job
):
    running = fresh_registry("anonymous")
    with running.client() as client:
        seed(client)
    registry = Registry.objects.create(name="parallel", url=running.url, insecure=True)
    second = worker_start(SESSION_DIR / "worker", worker_env, name="w2")
    try:
        # Interleaved, so scans and pushes are in flight together on both workers.
        job_ids: list[int] = []
        for i in range(max(SCANS, (len(PUSHES) + 1) // 2)):
            if i < SCANS:
                job_ids.append(scan_submit(registry=registry).pk)
            for target, sources in PUSHES[2 * i:2 * i + 2]:
                job_ids.append(push_submit(registry=registry, target=target, fmt="auto", annotations={},
                                           expect_digest=None,
                                           sources=[SourceSpec(s) for s in sources]).pk)
        jobs = [wait_job(pk, timeout=120) for pk in job_ids]
    finally:
        second.stop()

    failed = [(j.kind, j.target, j.error) for j in jobs if j.status != Job.STATUS_SUCCEEDED]
    assert not failed, (failed, _tracebacks(celery_worker.log(), second.log()))
    assert {j.kind for j in jobs} == {"scan", "push"}
    # Both workers took part (otherwise nothing ran in parallel across processes)...
    assert "succeeded in" in second.log(), second.log()[-3000:]
    assert {j.worker.partition("@")[0] for j in jobs} == {"w1", "w2"}, [(j.kind, j.worker) for j in jobs]
    # ...at the same time: a job of one worker ran while a job of the other did.
    overlapping = [(a.pk, b.pk) for a in jobs for b in jobs if a.worker != b.worker
                   and a.started_at < b.finished_at and b.started_at < a.finished_at]
    assert overlapping, [(j.kind, j.worker, j.started_at, j.finished_at) for j in jobs]

    # No duplicate rows.
    assert not _duplicates(Tag, "repository", "name")
    assert not _duplicates(Manifest, "digest")
    assert not _duplicates(ManifestChild, "parent", "position")
    assert not _duplicates(TagPlatform, "tag", "platform", "os_version")

    # Every index stored with all its children, every tag pointing at its manifest.
    for row in Manifest.objects.filter(kind="index"):
        expected = len(parse_manifest(bytes(row.raw), digest=row.digest).children)
        assert row.children.count() == expected, row.digest
    for tag in Tag.objects.select_related("manifest"):
        assert tag.error == "", (str(tag), tag.error)
        assert tag.manifest is not None and tag.manifest.digest == tag.digest, str(tag)

    # Counters agree with the rows they count (no lost update of an aggregate).
    for repository in Repository.objects.filter(registry=registry):
        assert repository.tag_count == repository.tags.count(), repository.name
        assert repository.list_count == repository.tags.filter(kind="index").count(), repository.name

    # The inventory is the registry: every tag present, at the digest the registry serves.
    with running.client() as client:
        served = {(repository, tag): client.head_manifest(repository, tag).digest
                  for repository in client.catalog() for tag in client.tags(repository)}
    stored = {(t.repository.name, t.name): t.digest
              for t in Tag.objects.filter(repository__registry=registry).select_related("repository")}
    assert stored == served

    # Each pushed tag as stored is what the registry serves and what the job reported.
    push_jobs = [j for j in jobs if j.kind == "push"]
    for job in push_jobs:
        repository, _, tag = job.target.rpartition(":")
        assert stored[(repository, tag)] == served[(repository, tag)] == job.digest, job.target
    assert PushRecord.objects.filter(registry=registry).count() == len(push_jobs)
    assert set(PushRecord.objects.values_list("job", flat=True)) == {j.pk for j in push_jobs}


# The races the test above can hit, made certain: the interleaving is forced.


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_repository_do_not_lose_each_others_tag_count(fresh_registry, monkeypatch):
    """Two push refreshes of one repository at once: each counts its own new
    tag; without a lock on the repository row the last to commit writes a count
    that misses the other's tag (PostgreSQL, READ COMMITTED)."""
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="race/count", tag="a", platform=Platform("linux", "amd64"))
        image_push(client, repository="race/count", tag="b", platform=Platform("linux", "arm64", "v8"))
    registry = Registry.objects.create(name="race", url=running.url, insecure=True)
    Repository.objects.create(registry=registry, name="race/count")
    # First, both writers have read their tag from the registry before either
    # writes: the two are in flight together (this must happen, or the test
    # proves nothing). Then both would count before either writes its count,
    # unless the second is held back until the first commits (the first then
    # waits here in vain: that wait is expected to break).
    both_fetched = threading.Barrier(2, timeout=20)
    overlapped: list[str] = []
    both_counted = threading.Barrier(2, timeout=3)
    counted: list[str] = []
    fetch, save = fetching.tag_fetch, Repository.save

    def fetch_then_wait_for_the_other(*, tag, **kwargs):
        fetched = fetch(tag=tag, **kwargs)
        try:
            both_fetched.wait()
            overlapped.append(tag)
        except threading.BrokenBarrierError:
            pass  # asserted below: `overlapped` misses this writer
        return fetched

    def save_after_both_counted(self, *args, **kwargs):
        if "tag_count" in (kwargs.get("update_fields") or ()):
            counted.append(str(self.tag_count))
            try:
                both_counted.wait()
            except threading.BrokenBarrierError:
                pass  # the fix: the other writer is waiting for our lock, not counting beside us
        return save(self, *args, **kwargs)

    monkeypatch.setattr(fetching, "tag_fetch", fetch_then_wait_for_the_other)
    monkeypatch.setattr(Repository, "save", save_after_both_counted)
    crashed: list[str] = []

    def refresh(tag: str) -> None:
        try:
            with running.client() as client:
                scan_repository.repository_scan(client=client, registry=registry, name="race/count", only_tags=[tag],
                                     concurrency=1)
        except Exception as exc:
            crashed.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not crashed
    assert sorted(overlapped) == ["a", "b"], "the two writers never ran at the same time"
    assert len(counted) == 2, counted
    repository = Repository.objects.get(name="race/count")
    assert repository.tags.count() == 2
    assert repository.tag_count == 2


@pytest.mark.django_db(transaction=True)
def test_a_scan_with_an_older_listing_keeps_what_a_push_recorded_meanwhile(fresh_registry, monkeypatch):
    """A full scan lists the catalog and the tags, then a push lands and records
    its tag (and a new repository); the scan must not delete them as gone."""
    running = fresh_registry("anonymous")
    with running.client() as client:
        image_push(client, repository="race/old", tag="v1", platform=Platform("linux", "amd64"))
    registry = Registry.objects.create(name="race", url=running.url, insecure=True)
    tags = RegistryClient.tags
    pushed_meanwhile: list[str] = []

    def push_meanwhile(repository: str, tag: str) -> None:
        pushed_meanwhile.append(f"{repository}:{tag}")
        with running.client() as client:
            image_push(client, repository=repository, tag=tag, platform=Platform("linux", "arm64", "v8"))
            scan_repository.repository_scan(client=client, registry=registry, name=repository, only_tags=[tag],
                                 concurrency=1)

    def tags_then_pushes(self, repository, **kwargs):
        listed = list(tags(self, repository, **kwargs))  # the scan's view, from now on stale
        if repository == "race/old":
            push_meanwhile("race/old", "v2")
            push_meanwhile("race/new", "v1")
        return iter(listed)

    monkeypatch.setattr(RegistryClient, "tags", tags_then_pushes)
    job = job_create(kind="scan", registry=registry, target=registry.name, params={})
    jobs.job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()

    assert job.status == "succeeded", job.error
    assert pushed_meanwhile == ["race/old:v2", "race/new:v1"]  # the interleaving happened
    stored = set(Tag.objects.values_list("repository__name", "name"))
    assert stored == {("race/old", "v1"), ("race/old", "v2"), ("race/new", "v1")}
    assert Repository.objects.get(name="race/old").tag_count == 2
