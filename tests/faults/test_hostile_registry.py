"""Hostile or broken registries: every fault is a per-item error, the rest is scanned, nothing answers 500.

The registry here is tests/faults/hostile/: a real Docker Distribution
cannot be made to misbehave on cue. Most cases scan one repository in-process
(with a short client timeout where a test waits on one): test_hostile_cases.py,
test_hostile_origins.py, test_hostile_bodies.py; the tests here send the whole
hostile registry, and a push from it, through the real Celery worker.

The second origin of the hostile server (another port of the same host)
is where it points credentials: pagination Links, upload Locations, blob
redirects, a moved token realm. Each such test asserts, from what that
server recorded, that no Authorization reached it.

The last test asserts the figures the README states (cases
tried, faults the hostile server actually sent, good items checked and lost,
the most bytes the client read of one oversize body) and writes them to
test-artifacts/faults.json.
"""

from __future__ import annotations

import json

import pytest

from manifests.models import Job, Repository, Tag
from manifests.scan.fanout import scan_submit
from manifests.services.push import push_submit
from registry.assemble import SourceSpec
from registry.transport import MAX_PAGE_BYTES, READ_CHUNK
from tests.faults import hostile_checks as checks
from tests.faults.hostile.content import BAD_NAMES, SCRIPT
from tests.faults.hostile.server import HostileRegistry

# -- the whole registry, through the real worker -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_whole_hostile_registry_through_the_worker_loses_nothing_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, settings, figures, request):
    # The worker reads REGISTRY_TIMEOUT_SECONDS at start, as this process did: slow/hang:stuck holds its
    # first request past that timeout, and answers the retry.
    with HostileRegistry(hang_seconds=settings.REGISTRY_TIMEOUT_SECONDS + 2, hang_times=1) as hostile:
        registry = checks.registry_add(hostile)
        job = wait_job(scan_submit(registry=registry).pk, timeout=150)
        assert celery_worker.process.poll() is None, celery_worker.log()[-3000:]
        assert job.status == Job.STATUS_SUCCEEDED, (job.error, celery_worker.log()[-3000:])
        registry.refresh_from_db()

        # Every bad item has its own error, with the registry's code or message where it gave one.
        listed = [name for name in hostile.catalog if name not in BAD_NAMES]
        for (repository, tag), code in hostile.expected_errors.items():
            if repository not in listed:
                continue
            if tag:
                error = checks.tag_error(registry, repository, tag)
            else:
                error = Repository.objects.get(registry=registry, name=repository).error
            assert error.startswith(f"{code}: ") or (code == "UNAVAILABLE" and "storage backend on fire" in error), \
                (repository, tag, error)
        assert checks.tag_error(registry, "flaky/5xx", "always") == f"storage backend on fire {SCRIPT}"
        assert checks.tag_error(registry, "limited/app", "forever").endswith("pull rate limit exceeded: come back in an hour")
        assert hostile.count("GET", "/v2/slow/hang/manifests/stuck") == 2  # timed out once, then answered
        assert {step["name"] for step in job.steps if step["event"] == "skipped"} == set(BAD_NAMES), job.steps[:8]
        assert hostile.escaped == []
        assert job.result["errors"] == sum(1 for (r, _) in hostile.expected_errors if r in listed)

        # Pages and API answers: 200 everywhere, hostile markup escaped.
        checks.pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))

        # The worker is alive and runs another job.
        again = wait_job(scan_submit(registry=registry, repository="good/app").pk, timeout=60)
        assert again.status == Job.STATUS_SUCCEEDED, again.error
        assert celery_worker.process.poll() is None
        checks.check_good(figures, request, hostile, registry, *listed)


@pytest.mark.django_db(transaction=True)
def test_a_push_whose_source_is_on_the_hostile_registry_fails_clearly_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, figures, request):
    with HostileRegistry(catalog=["good/app", "good/other", "bad/digest"]) as hostile:
        registry = checks.registry_add(hostile)
        lying = push_submit(registry=registry, target="good/list:v1", fmt="auto", annotations={},
                                sources=[SourceSpec("good/app:v1"), SourceSpec("bad/digest:lying")],
                                expect_digest="")
        lying = wait_job(lying.pk)
        assert lying.status == Job.STATUS_FAILED
        assert lying.error.startswith("registry error: DIGEST_MISMATCH: manifest bad/digest@"), lying.error
        # A read-only registry refusing a push is a real one's mode: tests/faults/test_real_registry_content.py.
        assert celery_worker.process.poll() is None
        scan = wait_job(scan_submit(registry=registry).pk)
        assert scan.status == Job.STATUS_SUCCEEDED, scan.error
        for job in (lying,):
            answers = checks.pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))
            assert job.error.split(": ")[1] in answers[f"/jobs/{job.pk}/"]
        assert not Tag.objects.filter(repository__name="good/list").exists()
        checks.check_good(figures, request, hostile, registry, "good/app", "good/other", "bad/digest")


# -- the figures the README states ------------------------------------------------------


def test_the_fault_suite_figures_hold_and_are_written_for_the_readme(figures, artifacts_dir):
    """Runs last in the module: what the README states of the cases above is asserted, then written."""
    summary = checks.summary(figures)
    assert summary["cases_tried"] >= 1, "run with the module's other tests"
    assert summary["items_lost"] == 0, {name: case["lost"] for name, case in figures.items() if case["lost"]}
    assert all(case["faults_injected"] >= 1 for case in figures.values()), \
        [name for name, case in figures.items() if not case["faults_injected"]]
    oversize = summary["oversize_bodies"]
    assert oversize["client_hung_up"] >= 1
    # The largest cap is a JSON page's (8 MiB): no body was read further than a cap and one chunk.
    assert oversize["most_bytes_the_client_read_of_one_body"] <= MAX_PAGE_BYTES + READ_CHUNK, oversize
    (artifacts_dir / "faults.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
