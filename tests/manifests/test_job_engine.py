"""The job engine's table and its one way in: every kind has an entry, a new kind is one entry,
and submitting asks the queue once."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string

from manifests import jobs
from manifests.models import Job, PushRecord, Registry, Rule
from manifests.scan.fanout import scan_submit
from manifests.services import queue
from manifests.services.promote import promotion_submit
from manifests.services.push import push_submit, rollback_submit
from manifests.services.registries import registry_check_submit, registry_draft_check_submit
from manifests.services.rules import rule_apply_submit
from registry.assemble import SourceSpec


def test_the_table_has_one_entry_per_job_kind_and_each_names_code_that_exists():
    kinds = {value for name, value in vars(Job).items() if name.startswith("KIND_")}
    assert set(jobs.KINDS) == kinds
    for spec in jobs.KINDS.values():
        for path in (spec.runner, spec.handed_off, spec.cleanup):
            if path:
                assert callable(import_string(path)), path


def _inline_seen(job: Job, progress: jobs.JobProgress) -> None:
    progress({"event": "ran", "inline": jobs.job_inline()})
    jobs.job_finish(job=job, progress=progress, result={"inline": jobs.job_inline()})


def _crashes(job: Job, progress: jobs.JobProgress) -> None:
    raise KeyError("a bug in the runner")


def _returns_without_ending(job: Job, progress: jobs.JobProgress) -> None:
    return None


@pytest.mark.django_db
def test_a_new_kind_is_one_runner_and_one_table_entry(monkeypatch):
    """The engine starts, runs and ends a kind it has never heard of, given its entry; whatever the
    runner does, the job ends with a message."""
    monkeypatch.setitem(jobs.KINDS, "example", jobs.JobKind(f"{__name__}._inline_seen"))
    monkeypatch.setitem(jobs.KINDS, "crash", jobs.JobKind(f"{__name__}._crashes", needs_registry=False))
    monkeypatch.setitem(jobs.KINDS, "silent", jobs.JobKind(f"{__name__}._returns_without_ending"))
    registry = Registry.objects.create(name="kinds", url="http://127.0.0.1:9", insecure=True)

    example = jobs.job_create(kind="example", registry=registry, target="kinds", params={})
    jobs.job_run(job_id=example.pk, worker="w@host", inline=True)
    example.refresh_from_db()
    assert (example.status, example.result, example.worker) == (Job.STATUS_SUCCEEDED, {"inline": True}, "w@host")
    assert [step["event"] for step in example.steps] == ["ran"] and example.steps[0]["inline"] is True

    crash = jobs.job_create(kind="crash", registry=None, target="kinds", params={})
    jobs.job_run(job_id=crash.pk)
    crash.refresh_from_db()
    assert (crash.status, crash.error) == (Job.STATUS_FAILED, "internal error (KeyError): see the worker log")

    silent = jobs.job_create(kind="silent", registry=registry, target="kinds", params={})
    jobs.job_run(job_id=silent.pk)
    silent.refresh_from_db()
    assert silent.status == Job.STATUS_FAILED and "ended without a result" in silent.error

    unknown = jobs.job_create(kind="retired", registry=registry, target="kinds", params={})
    jobs.job_run(job_id=unknown.pk)
    unknown.refresh_from_db()
    assert (unknown.status, unknown.error) == (Job.STATUS_FAILED, "no runner for jobs of kind 'retired'")

    orphan = jobs.job_create(kind="example", registry=None, target="kinds", params={})
    jobs.job_run(job_id=orphan.pk)  # needs_registry: failed before its runner runs
    orphan.refresh_from_db()
    assert (orphan.status, orphan.error, orphan.steps) == (Job.STATUS_FAILED, "the registry was removed", [])


@pytest.mark.django_db
def test_every_submit_asks_the_queue_once_and_sends_one_job_run_task(monkeypatch, django_capture_on_commit_callbacks):
    """The queue check is a counted stand-in for the broker's PING (what is counted is the asking, not
    the answer); the sending is the real on-commit send, caught before it reaches the broker."""
    asked: list[int] = []
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(queue, "queue_available", lambda: asked.append(1) or True)
    monkeypatch.setattr(jobs.current_app, "send_task", lambda name, args, **options: sent.append((name, args)))
    registry = Registry.objects.create(name="submit", url="http://127.0.0.1:9", insecure=True)
    other = Registry.objects.create(name="other", url="http://127.0.0.1:9", insecure=True)
    record = PushRecord.objects.create(registry=registry, repository="app", tag="v1", new_digest="sha256:" + "1" * 64,
                                       media_type="application/vnd.oci.image.index.v1+json", raw=b"{}")
    rule = Rule.objects.create(name="r", registry=registry, target="app:{tag}")
    submits = [
        lambda: scan_submit(registry=registry),
        lambda: scan_submit(registry=registry, repository="app", tags=["v1"]),
        lambda: push_submit(registry=registry, target="app:v2", sources=[SourceSpec("app:v1")], fmt="auto",
                            annotations={}, expect_digest=None),
        lambda: rollback_submit(record=record),
        lambda: registry_check_submit(registry=registry),
        lambda: registry_draft_check_submit(draft=Registry(name="d", url="http://127.0.0.1:9"), secret="s"),
        lambda: rule_apply_submit(rule=rule),
        lambda: promotion_submit(source=registry, reference="app:v1", target_registry=other, target="app:v1",
                                 platforms=None, expect_digest=None, plan_digest=""),
    ]
    for submit in submits:
        asked.clear()
        sent.clear()
        with django_capture_on_commit_callbacks(execute=True):
            job = submit()
        assert len(asked) == 1, job.kind
        assert sent == [(jobs.JOB_TASK, [job.pk])], job.kind
        assert Job.objects.get(pk=job.pk).status == Job.STATUS_QUEUED
    assert {job.kind for job in Job.objects.all()} == set(jobs.KINDS)


@pytest.mark.django_db
def test_a_submit_while_the_queue_is_down_creates_no_job(monkeypatch):
    monkeypatch.setattr(queue, "queue_available", lambda: False)
    registry = Registry.objects.create(name="down", url="http://127.0.0.1:9", insecure=True)
    with pytest.raises(queue.QueueUnavailable):
        scan_submit(registry=registry)
    assert not Job.objects.exists()
