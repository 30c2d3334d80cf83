"""The same push submitted again while the first is queued or running (a double click, a POST the browser
sends again) is the first job: the list is put once and moves its tag once in history.

The queue is a stand-in here (the broker's PING answered yes, the sending caught on commit): what is
tested is which job rows a submission makes, not a worker."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from manifests import jobs
from manifests.models import Job, Registry
from manifests.services import queue
from manifests.services.push import push_submit
from registry.assemble import SourceSpec

SOURCES = [SourceSpec("username/x8664-test:latest"), SourceSpec("username/arm64v8-test:latest")]


@pytest.fixture
def queued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(queue, "queue_available", lambda: True)
    monkeypatch.setattr(jobs, "job_send", lambda job: sent.append(job.pk))
    return sent


def _push(registry: Registry, user, **changes) -> Job:
    arguments = {"target": "username/test:latest", "sources": SOURCES, "fmt": "auto", "annotations": {},
                 "expect_digest": None, "preview_digest": "sha256:" + "a" * 64, **changes}
    return push_submit(registry=registry, user=user, **arguments)


@pytest.mark.django_db
def test_the_same_push_while_the_first_waits_is_the_first_job_and_another_push_is_its_own(queued,
                                                                                          django_user_model):
    registry = Registry.objects.create(name="once", url="http://127.0.0.1:9", insecure=True)
    alice, bob = (django_user_model.objects.create_user(name) for name in ("alice", "bob"))
    first = _push(registry, alice)
    assert _push(registry, alice).pk == first.pk  # the double click
    assert queued == [first.pk]  # sent to a worker once
    others = [_push(registry, bob),  # someone else's push is theirs
              _push(registry, alice, annotations={"org.opencontainers.image.version": "1.4"}),
              _push(registry, alice, target="username/test:1.4"),
              _push(registry, alice, expect_digest="sha256:" + "b" * 64)]
    assert len({first.pk, *(job.pk for job in others)}) == 5
    Job.objects.filter(pk=first.pk).update(status=Job.STATUS_RUNNING, heartbeat_at=timezone.now())
    assert _push(registry, alice).pk == first.pk
    Job.objects.filter(pk=first.pk).update(status=Job.STATUS_SUCCEEDED)
    again = _push(registry, alice)  # pushed already: asked again, it is pushed again
    assert again.pk != first.pk and Job.objects.filter(kind=Job.KIND_PUSH).count() == 6


@pytest.mark.django_db
def test_a_push_whose_job_is_no_longer_alive_is_pushed_again(queued, django_user_model):
    """A queued job whose task was lost (a broker restarted) or a running one whose worker died (its
    lease not renewed) does not swallow the same push asked again."""
    registry = Registry.objects.create(name="stale", url="http://127.0.0.1:9", insecure=True)
    user = django_user_model.objects.create_user("retrier")
    lost = _push(registry, user)
    Job.objects.filter(pk=lost.pk).update(created_at=timezone.now() - datetime.timedelta(seconds=120))
    second = _push(registry, user)
    assert second.pk != lost.pk
    stale = datetime.timedelta(seconds=settings.JOB_LEASE_SECONDS + 5)
    Job.objects.filter(pk=second.pk).update(status=Job.STATUS_RUNNING, heartbeat_at=timezone.now() - stale)
    third = _push(registry, user)
    assert third.pk not in (lost.pk, second.pk)
    assert _push(registry, user).pk == third.pk  # the one alive


@pytest.mark.django_db(transaction=True)
def test_two_submissions_of_one_push_at_the_same_moment_make_one_job(queued, django_user_model):
    """Two requests handled at once (two threads, two database connections): the second waits for the
    first's transaction, then finds its job."""
    registry = Registry.objects.create(name="race", url="http://127.0.0.1:9", insecure=True)
    user = django_user_model.objects.create_user("clicker")
    start = threading.Barrier(2)
    made: list[int] = []

    def submit() -> None:
        try:
            start.wait()
            made.append(_push(registry, user).pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 2 and made[0] == made[1], made
    assert Job.objects.filter(kind=Job.KIND_PUSH).count() == 1
