"""A part on a worker writes one repository (or batch) while it fetches the next (scan/behind.py): what
the pending write holds is not fetched again, and the result is the one writing in turn gives."""

from __future__ import annotations

import threading
import time

import pytest

from manifests.models import Job, Registry, ScanPart, Tag
from manifests.scan import behind, fetching
from manifests.scan import repository as scan_repository
from manifests.scan.fanout import PART_TAGS, part_names, scan_part_run
from registry.platform import Platform
from tests.harness.content import mirrors_push


@pytest.fixture(autouse=True)
def _writing_thread_released():
    yield
    behind.writing_thread_release()  # its connection would keep the test database from being dropped


def test_parts_hold_up_to_eight_repositories_of_a_bounded_size_and_several_workers_still_share_a_scan():
    names = [f"r{index:03}" for index in range(100)]
    assert part_names(names[:7], {}) == [[name] for name in names[:7]]  # fewer than 8 parts otherwise
    assert [len(part) for part in part_names(names[:20], {})] == [2] * 10
    assert [len(part) for part in part_names(names, {})] == [8] * 12 + [4]
    sizes = {"r001": PART_TAGS, "r005": 2000, "r006": 2000, "r007": 2000}  # as the last scan counted them
    assert part_names(names, sizes)[:3] == [names[0:5], names[5:7], names[7:15]]  # at most PART_TAGS
    assert sum(part_names(names, sizes), []) == names  # each once, in catalog order


PLATFORMS = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "386")]


def _mirrors(client, repositories: tuple[str, ...], *, same: bool = True) -> None:
    """Three images and a list of two more in each repository: the same content, or each its own."""
    mirrors_push(client, repositories, PLATFORMS, label="behind", same=same)


class _Timeline:
    """When each repository's fetch started and each write ran; the writes of `slow` take a while."""

    def __init__(self, monkeypatch, slow: str) -> None:
        self.events: list[tuple[str, str, float]] = []
        self.threads: set[str] = set()
        fetch, write = fetching.tags_fetch, scan_repository.repository_write

        def fetch_timed(**kwargs):
            self.events.append(("fetch", kwargs["repository"], time.monotonic()))
            return fetch(**kwargs)

        def write_timed(**kwargs):
            self.threads.add(threading.current_thread().name)
            started = time.monotonic()
            if kwargs["name"] == slow:
                time.sleep(0.5)
            try:
                return write(**kwargs)
            finally:
                self.events.append(("write", kwargs["name"], started))
                self.events.append(("written", kwargs["name"], time.monotonic()))

        monkeypatch.setattr(fetching, "tags_fetch", fetch_timed)
        monkeypatch.setattr(scan_repository, "repository_write", write_timed)

    def at(self, kind: str, name: str) -> list[float]:
        return [at for event, repository, at in self.events if event == kind and repository == name]


def _job(registry: Registry, names: list[str]) -> Job:
    return Job.objects.create(kind="scan", registry=registry, target=registry.name, status="running",
                              params={"names": names, "started": "2026-01-01T00:00:00+00:00"},
                              result={"listing_requests": {"GET catalog": 1}})


@pytest.mark.django_db(transaction=True)
def test_a_part_fetches_its_next_repository_while_it_writes_the_one_before_and_fetches_each_digest_once(
        fresh_registry, monkeypatch):
    running = fresh_registry("anonymous")
    with running.client() as client:
        _mirrors(client, ("behind/a", "behind/b"))
    registry = Registry.objects.create(name="behind", url=running.url, insecure=True)
    timeline = _Timeline(monkeypatch, slow="behind/a")
    job = _job(registry, ["behind/a", "behind/b"])
    scan_part_run(job_id=job.pk, names=["behind/a", "behind/b"], behind=True)

    # b was read while a's write was still running, in the writing thread...
    [a_written] = timeline.at("written", "behind/a")
    [b_fetched] = timeline.at("fetch", "behind/b")
    assert b_fetched < a_written
    assert all(name.startswith("scan-write") for name in timeline.threads), timeline.threads
    # ...so only what a's fetch handed on says that b's content is known: each digest once.
    job.refresh_from_db()
    assert job.status == Job.STATUS_SUCCEEDED, job.error
    requests = job.result["requests"]
    assert requests["GET manifest"] == 8 + 2, requests  # every tag by tag; the two children once
    assert requests["GET blob"] == 5, requests  # five configs, once each
    assert job.result["tags"] == 8 and job.result["errors"] == 0
    assert ScanPart.objects.filter(job=job).count() == 2

    def stored(name: str) -> list[tuple]:
        return sorted(Tag.objects.filter(repository__name=name).values_list("name", "digest", "platforms", "error"))

    assert stored("behind/b") == stored("behind/a")
    assert dict(Tag.objects.filter(repository__name="behind/b").values_list("name", "platforms"))["multi"] == [
        "linux/amd64", "linux/arm64"]


@pytest.mark.django_db(transaction=True)
def test_the_batches_of_one_repository_are_written_behind_its_fetch_as_they_are_in_turn(fresh_registry,
                                                                                        monkeypatch):
    running = fresh_registry("anonymous")
    with running.client() as client:
        _mirrors(client, ("turns/one", "turns/two"), same=False)
    registry = Registry.objects.create(name="turns", url=running.url, insecure=True)
    in_turn = _job(registry, ["turns/one"])
    scan_part_run(job_id=in_turn.pk, names=["turns/one"])  # one batch, written before the part goes on
    monkeypatch.setattr(scan_repository, "TAGS_PER_WRITE", 2)
    timeline = _Timeline(monkeypatch, slow="turns/two")
    behind = _job(registry, ["turns/two"])
    scan_part_run(job_id=behind.pk, names=["turns/two"], behind=True)

    assert len(timeline.at("write", "turns/two")) == 2  # four tags, two at a time
    assert timeline.at("fetch", "turns/two")[1] < timeline.at("written", "turns/two")[0]
    in_turn.refresh_from_db()
    behind.refresh_from_db()
    assert behind.status == Job.STATUS_SUCCEEDED, behind.error
    assert behind.result["requests"] == in_turn.result["requests"]

    def stored(name: str) -> list[tuple]:  # the digests differ: each repository's content is its own
        return sorted(Tag.objects.filter(repository__name=name).values_list("name", "kind", "platforms", "error"))

    assert stored("turns/two") == stored("turns/one")
    assert registry.repositories.get(name="turns/two").tag_count == 4


@pytest.mark.django_db(transaction=True)
def test_a_part_whose_credentials_cannot_be_read_counts_each_of_its_repositories_with_the_error(registry_basic):
    """The key was rotated between the fan-out and the part: no client can be made. Each repository of
    the part is counted with the error, and the job closes instead of waiting for them."""
    from cryptography.fernet import Fernet

    _, password = registry_basic.credentials()
    registry = Registry.objects.create(
        name="rotated-part", url=registry_basic.url, insecure=True, auth=Registry.AUTH_BASIC, username="admin",
        secret_encrypted=Fernet(Fernet.generate_key()).encrypt(password.encode()).decode())
    job = _job(registry, ["rotated/a", "rotated/b"])
    scan_part_run(job_id=job.pk, names=["rotated/a", "rotated/b"], behind=True)
    parts = dict(ScanPart.objects.filter(job=job).values_list("repository", "counts"))
    assert sorted(parts) == ["rotated/a", "rotated/b"]
    assert all(counts["errors"] == 1 and "cannot be decrypted" in counts["note"] for counts in parts.values()), parts
    job.refresh_from_db()
    assert job.is_done and job.result["errors"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_repository_that_counted_on_a_write_that_failed_is_not_written_without_what_it_lacks(fresh_registry,
                                                                                            monkeypatch):
    """a's write fails (a database error, injected: a narrow error path no real database gives on demand);
    b, fetched meanwhile, counted a's content as stored: it is not written pointing at manifests no row
    holds, but counted with the error, and the next scan stores both."""
    from django.db import OperationalError

    running = fresh_registry("anonymous")
    with running.client() as client:
        _mirrors(client, ("failed/a", "failed/b"))
    registry = Registry.objects.create(name="failed", url=running.url, insecure=True)
    write = scan_repository.repository_write

    def fails_for_a(**kwargs):
        if kwargs["name"] == "failed/a":
            raise OperationalError("database is locked")
        return write(**kwargs)

    monkeypatch.setattr(scan_repository, "repository_write", fails_for_a)
    job = _job(registry, ["failed/a", "failed/b"])
    scan_part_run(job_id=job.pk, names=["failed/a", "failed/b"], behind=True)
    parts = dict(ScanPart.objects.filter(job=job).values_list("repository", "counts"))
    assert parts["failed/a"]["crash"] == parts["failed/b"]["crash"] == "OperationalError", parts
    assert not Tag.objects.filter(repository__registry=registry).exists()

    monkeypatch.setattr(scan_repository, "repository_write", write)
    again = _job(registry, ["failed/a", "failed/b"])
    scan_part_run(job_id=again.pk, names=["failed/a", "failed/b"], behind=True)
    again.refresh_from_db()
    assert again.result["errors"] == 0 and again.result["tags"] == 8, again.result
    assert not Tag.objects.filter(repository__registry=registry).exclude(error="").exists()
