"""Processes that die mid-way: a killed worker, a stopped registry, an unreachable Redis. Nothing is lost."""

from __future__ import annotations

import random
import time

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from manifests import jobs, tasks
from manifests.jobs import job_create, job_run
from manifests.models import Job, PushRecord, Registry, Repository, Tag
from manifests.scan.fanout import scan_submit
from manifests.scan.repository import repository_scan
from manifests.services import queue
from manifests.services.push import push_submit
from manifests.stack.distribution import NARROW_USER
from manifests.stack.ports import free_port
from manifests.stack.workers import worker_start
from registry.assemble import SourceSpec
from registry.images import image_push
from registry.platform import Platform
from tests.conftest import SESSION_DIR
from tests.harness.throttle import ThrottledProxy

PLATFORMS = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7")]
# The pushes that get interrupted stream about 3 x 2 MiB of layers, one blob
# at a time, through a proxy paced at 1 MiB/s each way: they last about 6 s on
# any machine. The first blob is seen at most one layer (and one progress
# write, 0.3 s) late, so about 4 s of streaming are left to interrupt.
IMAGE_MEGABYTES = 4
PROXY_RATE = 1024 * 1024


def _big_images(client, repository_prefix: str, *, megabytes: int) -> list[str]:
    """Three single-platform images with large, incompressible layers, in three repositories."""
    rng = random.Random(repository_prefix)
    references = []
    for platform in PLATFORMS:
        repository = f"{repository_prefix}/{platform.architecture}"
        content = rng.randbytes(megabytes * 512 * 1024).hex()  # hex of random bytes: gzip halves it, no more
        image_push(client, repository=repository, tag="v1", platform=platform, content=content)
        references.append(f"{repository}:v1")
    return references


def _wait_for_step(job_id: int, event: str, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if any(step.get("event") == event for step in job.steps) or job.is_done:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {event}: {Job.objects.get(pk=job_id).steps}")


def _list_is_whole_or_absent(client, repository: str, tag: str) -> str:
    """The tag holds nothing, or a list every child of which exists: never a broken list."""
    from registry import errors

    try:
        manifest = client.get_manifest(repository, tag)
    except errors.NotFound:
        return ""
    for child in manifest.children:
        assert client.manifest_exists(repository, child.digest), f"{repository}:{tag} points at missing {child.digest}"
    return manifest.digest


@pytest.fixture
def slow_proxy():
    proxies: list[ThrottledProxy] = []

    def start(running) -> ThrottledProxy:
        proxies.append(ThrottledProxy(running.port, bytes_per_second=PROXY_RATE).start())
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.stop()


def _narrow_slow_registry(name: str, running, slow_proxy) -> Registry:
    """The registry as the narrow user, whose tokens refuse cross-repository
    mounts (every blob is streamed through the worker), behind the slow proxy."""
    registry = Registry(name=name, url=slow_proxy(running).url, insecure=True, auth=Registry.AUTH_BASIC,
                        username=NARROW_USER)
    registry.set_secret(running.credentials(NARROW_USER)[1])
    registry.save()
    return registry


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_push_is_redelivered_and_the_push_completes(registry_token, worker_env, skopeo,
                                                                         tmp_path, slow_proxy):
    # The narrow user's tokens refuse cross-repository mounts, so every blob is
    # streamed through the worker, and through the slow proxy: a push long
    # enough to be killed in the middle.
    with registry_token.client() as admin:
        sources = _big_images(admin, "killed", megabytes=IMAGE_MEGABYTES)
    registry = _narrow_slow_registry("kill", registry_token, slow_proxy)
    job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target="killed/list:v1", params={
        "sources": [SourceSpec(s).to_json() for s in sources], "format": "auto", "annotations": {},
        "expect_digest": ""})
    # A queue of its own, and a short visibility timeout, so that redelivery happens within the test.
    queue_name = f"faults-{free_port()}"
    # A short lease too: the heir takes the job over once the victim's heartbeat is 2 s old.
    env = {**worker_env, "CELERY_VISIBILITY_TIMEOUT": "3", "CELERY_RESTORE_INTERVAL": "1", "JOB_LEASE_SECONDS": "2"}
    first = worker_start(SESSION_DIR / "kill", env, name="victim", concurrency=1, queues=queue_name)
    try:
        tasks.job_run.apply_async(args=[job.pk], queue=queue_name)
        running = _wait_for_step(job.pk, "blob")
        assert not running.is_done
    finally:
        first.kill()  # SIGKILL, the whole process group (also when the test fails before: no worker left behind)
    with registry_token.client() as admin:
        assert _list_is_whole_or_absent(admin, "killed/list", "v1") == ""
    assert Job.objects.get(pk=job.pk).status == Job.STATUS_RUNNING

    second = worker_start(SESSION_DIR / "kill", env, name="heir", concurrency=1, queues=queue_name)
    try:
        deadline = time.monotonic() + 90
        while not Job.objects.get(pk=job.pk).is_done and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        second.stop()
    job.refresh_from_db()
    assert job.status == Job.STATUS_SUCCEEDED, (job.error, second.log()[-3000:])
    assert job.attempts == 2
    assert any(step.get("event") == "retry" for step in job.steps)
    # Copies are idempotent: what the first attempt copied is found, not copied again.
    assert job.result["copied"]["blobs_present"] + job.result["copied"]["manifests_present"] >= 1
    with registry_token.client() as admin:
        assert _list_is_whole_or_absent(admin, "killed/list", "v1") == job.digest
    assert PushRecord.objects.filter(job=job).count() == 1
    creds = [c.replace("--creds", "--src-creds") for c in registry_token.skopeo_creds()]
    skopeo("copy", "--src-tls-verify=false", *creds, "--override-arch", "arm", "--override-variant", "v7",
           f"docker://{registry_token.host}/killed/list:v1", f"oci:{tmp_path / 'arm'}")


@pytest.mark.django_db(transaction=True)
def test_a_stalled_worker_that_wakes_after_a_takeover_does_not_overwrite_the_new_owners_result(
        registry_token, worker_env, slow_proxy):
    """A worker freezes mid-push (SIGSTOP: a long pause, a partition) past its
    lease; the broker delivers the task again, a second worker takes the job
    over and finishes it. When the first wakes up (SIGCONT) and reaches its
    end, the job is no longer its own: its outcome is dropped."""
    import os
    import signal

    with registry_token.client() as admin:
        sources = _big_images(admin, "stalled", megabytes=IMAGE_MEGABYTES)
    registry = _narrow_slow_registry("stall", registry_token, slow_proxy)
    job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target="stalled/list:v1", params={
        "sources": [SourceSpec(s).to_json() for s in sources], "format": "auto", "annotations": {},
        "expect_digest": ""})
    queue_name = f"faults-{free_port()}"
    env = {**worker_env, "CELERY_VISIBILITY_TIMEOUT": "3", "CELERY_RESTORE_INTERVAL": "1", "JOB_LEASE_SECONDS": "2"}
    first = worker_start(SESSION_DIR / "stall", env, name="stalled", concurrency=1, queues=queue_name)
    second = None
    try:
        tasks.job_run.apply_async(args=[job.pk], queue=queue_name)
        assert not _wait_for_step(job.pk, "blob").is_done
        os.killpg(first.process.pid, signal.SIGSTOP)
        second = worker_start(SESSION_DIR / "stall", env, name="heir", concurrency=1, queues=queue_name)
        deadline = time.monotonic() + 90
        while not Job.objects.get(pk=job.pk).is_done and time.monotonic() < deadline:
            time.sleep(0.2)
        job.refresh_from_db()
        assert job.status == Job.STATUS_SUCCEEDED and job.attempts == 2, (job.error, second.log()[-3000:])
        assert job.worker.startswith("heir@")
        settled = (job.status, job.error, job.digest, job.result, job.finished_at, job.steps)
        os.killpg(first.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 90
        while "no longer owns the job" not in first.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"job {job.pk}: attempt 1 no longer owns the job" in first.log(), first.log()[-3000:]
    finally:
        try:
            os.killpg(first.process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        first.kill()
        if second is not None:
            second.stop()
    job.refresh_from_db()
    assert (job.status, job.error, job.digest, job.result, job.finished_at, job.steps) == settled
    assert PushRecord.objects.filter(job=job).count() == 1
    with registry_token.client() as admin:
        assert _list_is_whole_or_absent(admin, "stalled/list", "v1") == job.digest


@pytest.mark.django_db(transaction=True)
def test_a_push_delivered_again_while_its_first_run_is_alive_never_runs_beside_it(registry_token, celery_worker,
                                                                                   wait_job, slow_proxy):
    """The broker delivers a task again when it outlives the visibility timeout,
    though its worker is alive: the second delivery must wait, not push beside
    the first."""
    with registry_token.client() as admin:
        sources = _big_images(admin, "twice", megabytes=IMAGE_MEGABYTES)
    registry = _narrow_slow_registry("twice", registry_token, slow_proxy)
    job = push_submit(registry=registry, target="twice/list:v1", sources=[SourceSpec(s) for s in sources],
                      fmt="auto", annotations={}, expect_digest="")
    assert not _wait_for_step(job.pk, "blob").is_done
    with pytest.raises(jobs.JobBusy):
        job_run(job_id=job.pk)
    again = tasks.job_run.apply_async(args=[job.pk])  # to the worker, beside the first run
    job = wait_job(job.pk, timeout=120)
    assert job.status == Job.STATUS_SUCCEEDED, job.error
    assert job.attempts == 1 and not any(step.get("event") == "retry" for step in job.steps)
    assert PushRecord.objects.filter(job=job).count() == 1
    deadline = time.monotonic() + 10
    while f"job_run[{again.id}] retry: Retry in" not in celery_worker.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"job_run[{again.id}] retry: Retry in" in celery_worker.log(), "the second delivery was not put off"
    with registry_token.client() as admin:
        assert _list_is_whole_or_absent(admin, "twice/list", "v1") == job.digest


@pytest.mark.django_db(transaction=True)
def test_a_registry_stopped_mid_push_fails_the_job_cleanly_and_a_retry_succeeds(fresh_registry, celery_worker,
                                                                                 wait_job, slow_proxy):
    running = fresh_registry("token")
    with running.client() as admin:
        sources = _big_images(admin, "stopped", megabytes=IMAGE_MEGABYTES)
    # The narrow user's tokens refuse mounts: blobs are streamed, through the
    # slow proxy, so the registry can be stopped mid-way.
    registry = _narrow_slow_registry("stop", running, slow_proxy)
    job = push_submit(registry=registry, target="stopped/list:v1", sources=[SourceSpec(s) for s in sources],
                      fmt="auto", annotations={}, expect_digest="")
    assert not _wait_for_step(job.pk, "blob").is_done
    running.stop()
    job = wait_job(job.pk, timeout=120)
    assert job.status == Job.STATUS_FAILED
    assert "registry error" in job.error and ("connect" in job.error or "UNAVAILABLE" in job.error), job.error
    assert not PushRecord.objects.filter(job=job).exists()
    assert not Tag.objects.filter(repository__name="stopped/list").exists()
    running.start()
    with running.client() as admin:
        assert _list_is_whole_or_absent(admin, "stopped/list", "v1") == ""
    again = push_submit(registry=registry, target="stopped/list:v1", sources=[SourceSpec(s) for s in sources],
                        fmt="auto", annotations={}, expect_digest="")
    again = wait_job(again.pk, timeout=120)
    assert again.status == Job.STATUS_SUCCEEDED, again.error
    with running.client() as admin:
        assert _list_is_whole_or_absent(admin, "stopped/list", "v1") == again.digest


def _cut_after_put(running, repository: str, tag: str) -> ThrottledProxy:
    """The registry as seen through a proxy that stops it right after the list's PUT by tag
    (the registry's answer to the PUT still comes through)."""
    return ThrottledProxy(running.port, bytes_per_second=64 * 1024 * 1024,
                          cut_after=f"PUT /v2/{repository}/manifests/{tag} ".encode()).start()


@pytest.mark.django_db(transaction=True)
def test_a_registry_stopped_right_after_the_list_put_leaves_a_push_record_noting_the_failed_read_back(
        fresh_registry, celery_worker, wait_job):
    running = fresh_registry("basic")
    with running.client() as admin:
        image_push(admin, repository="cut/amd64", tag="v1", platform=PLATFORMS[0])
        image_push(admin, repository="cut/arm64", tag="v1", platform=PLATFORMS[1])
    proxy = _cut_after_put(running, "cut/list", "v1")
    try:
        username, password = running.credentials()
        registry = Registry(name="cut", url=proxy.url, insecure=True, auth=Registry.AUTH_BASIC, username=username)
        registry.set_secret(password)
        registry.save()
        job = push_submit(registry=registry, target="cut/list:v1", fmt="auto", annotations={},
                          expect_digest="", sources=[SourceSpec("cut/amd64:v1"), SourceSpec("cut/arm64:v1")])
        job = wait_job(job.pk, timeout=120)
    finally:
        proxy.stop()
    assert proxy.cut.is_set() and proxy.refused, proxy.requests  # the read-back met a stopped registry
    assert job.status == Job.STATUS_FAILED
    assert "cut/list:v1 now holds" in job.error and "reading it back failed: registry error" in job.error, job.error
    # The tag moved: its history knows, with the check's outcome.
    record = PushRecord.objects.get(job=job)
    assert record.new_digest == job.digest and record.old_digest == ""
    assert record.verified is False and record.verify_error.startswith("read-back failed: registry error")
    with running.client() as admin:
        assert admin.head_manifest("cut/list", "v1").digest == record.new_digest
    assert password not in celery_worker.log()


@pytest.mark.django_db
def test_an_inventory_refresh_that_fails_after_the_put_leaves_a_verified_push_record(registry_anonymous,
                                                                                    monkeypatch):
    """The list is put and reads back whole; recording it in the inventory then
    meets a database error. The error is injected in the refresh (a narrow error
    path): a real database cannot be made to fail at exactly that write."""
    from django.db import OperationalError

    from manifests.services import push

    with registry_anonymous.client() as client:
        image_push(client, repository="refresh/amd64", tag="v1", platform=PLATFORMS[0])
        image_push(client, repository="refresh/arm64", tag="v1", platform=PLATFORMS[1])
    registry = Registry.objects.create(name="refresh", url=registry_anonymous.url, insecure=True)

    def refresh_fails(*args, **kwargs) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(push, "_inventory_refresh", refresh_fails)
    job = jobs.job_create(kind=Job.KIND_PUSH, registry=registry, target="refresh/list:v1", params={
        "sources": [SourceSpec("refresh/amd64:v1").to_json(), SourceSpec("refresh/arm64:v1").to_json()],
        "format": "auto", "annotations": {}, "expect_digest": None})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED and job.digest
    assert "reads back whole, but recording it in the inventory failed: database error" in job.error, job.error
    record = PushRecord.objects.get(job=job)
    assert record.new_digest == job.digest and record.verified is True
    assert record.verify_error == "the inventory refresh failed: database error (OperationalError): see the worker log"


@pytest.mark.django_db
def test_a_rollback_whose_read_back_fails_is_recorded_like_a_push(fresh_registry):
    from manifests.jobs import job_run
    from registry.images import index_push

    running = fresh_registry("anonymous")
    with running.client() as client:
        one = image_push(client, repository="rbcut/app", tag=None, platform=PLATFORMS[0])
        two = image_push(client, repository="rbcut/app", tag=None, platform=PLATFORMS[1])
        first = index_push(client, repository="rbcut/app", tag="v1", children=[one.descriptor()])
        second = index_push(client, repository="rbcut/app", tag="v1", children=[one.descriptor(), two.descriptor()])
        raw = client.get_manifest("rbcut/app", first.digest).raw
    proxy = _cut_after_put(running, "rbcut/app", "v1")
    try:
        registry = Registry.objects.create(name="rbcut", url=proxy.url, insecure=True)
        earlier = PushRecord.objects.create(registry=registry, repository="rbcut/app", tag="v1",
                                            new_digest=first.digest, media_type=first.media_type, raw=raw)
        job = jobs.job_create(kind=Job.KIND_ROLLBACK, registry=registry, target="rbcut/app:v1",
                              params={"record": earlier.pk})
        job_run(job_id=job.pk)
    finally:
        proxy.stop()
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED and "reading it back failed" in job.error, job.error
    record = PushRecord.objects.get(job=job)
    assert (record.old_digest, record.new_digest, record.verified) == (second.digest, first.digest, False)
    with running.client() as client:
        assert client.head_manifest("rbcut/app", "v1").digest == first.digest


@pytest.mark.django_db(transaction=True)
def test_a_registry_stopped_during_a_scan_records_per_item_errors_and_loses_nothing(fresh_registry, celery_worker,
                                                                                     wait_job):
    """The registry stops in the middle of a whole-registry scan on the worker
    (after the catalog, the tag lists and a few HEADs): the tags and
    repositories it could not read keep what was known, each with its error."""
    running = fresh_registry("anonymous")
    tags = {"mid/a": ["v1", "v2", "v3", "v4"], "mid/b": ["v1", "v2", "v3"]}
    with running.client() as client:
        for repository, names in tags.items():
            for name in names:
                image_push(client, repository=repository, tag=name, platform=PLATFORMS[len(name) % 3],
                           content=f"{repository}:{name}")
    registry = Registry.objects.create(name="midscan", url=running.url, insecure=True, concurrency=1)
    assert wait_job(scan_submit(registry=registry).pk).status == Job.STATUS_SUCCEEDED
    known = {(t.repository.name, t.name): (t.digest, t.platforms) for t in Tag.objects.select_related("repository")}
    assert len(known) == 7
    with running.client() as client:  # what the interrupted scan should learn, and will not all
        image_push(client, repository="mid/a", tag="v1", platform=PLATFORMS[2], content="moved")
        image_push(client, repository="mid/b", tag="v9", platform=PLATFORMS[0], content="new")

    # The catalog, two tag lists and two HEADs answer; then the registry stops.
    proxy = ThrottledProxy(running.port, bytes_per_second=64 * 1024 * 1024, cut_after_requests=5).start()
    try:
        Registry.objects.filter(pk=registry.pk).update(url=proxy.url)
        job = wait_job(scan_submit(registry=registry).pk, timeout=120)
    finally:
        proxy.stop()
    assert proxy.cut.is_set() and proxy.refused, proxy.requests  # stopped during the scan, not before it
    assert job.status == Job.STATUS_SUCCEEDED, job.error  # the listing worked: the items carry the errors
    failed_tags = {(t.repository.name, t.name): t.error for t in Tag.objects.exclude(error="").select_related(
        "repository")}
    failed_repositories = dict(Repository.objects.exclude(error="").values_list("name", "error"))
    assert failed_tags or failed_repositories
    assert job.result["errors"] == len(failed_tags) + len(failed_repositories) >= 2, job.result
    for error in [*failed_tags.values(), *failed_repositories.values()]:
        assert "cannot connect" in error or "connection" in error, error
    # Nothing is lost: every tag known before is still there; one that could not be read keeps what was known.
    stored = {(t.repository.name, t.name): t for t in Tag.objects.select_related("repository")}
    assert set(known) <= set(stored)
    for key in known:
        if stored[key].error or stored[key].repository.error:
            assert (stored[key].digest, stored[key].platforms) == known[key], key
    assert set(Repository.objects.values_list("name", flat=True)) == set(tags)

    Registry.objects.filter(pk=registry.pk).update(url=running.url)  # the registry is back
    again = wait_job(scan_submit(registry=registry).pk)
    assert again.status == Job.STATUS_SUCCEEDED and again.result["errors"] == 0, again.result
    assert not Tag.objects.exclude(error="").exists() and not Repository.objects.exclude(error="").exists()
    assert Tag.objects.count() == 8


@pytest.mark.django_db
def test_a_registry_stopped_between_scans_keeps_what_was_known_and_records_the_error(fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="scan/stop", tag="v1", platform=PLATFORMS[0])
    registry = Registry.objects.create(name="scanstop", url=running.url, insecure=True)
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="scanstop", params={}).pk)
    running.stop()
    failed = job_create(kind="scan", registry=registry, target="scanstop", params={})
    job_run(inline=True, job_id=failed.pk)
    failed.refresh_from_db()
    registry.refresh_from_db()
    assert failed.status == Job.STATUS_FAILED and "cannot list repositories" in failed.error
    assert "cannot connect" in registry.last_scan_error
    tag = Tag.objects.get(name="v1")
    assert tag.digest == pushed.digest and tag.platforms == ["linux/amd64"]  # what was known is kept
    # A tag-level scan records the error on the tag and keeps its data.
    with running.client(max_retries=0) as client, CaptureQueriesContext(connection) as queries:
        repository_scan(client=client, registry=registry, name="scan/stop", only_tags=["v1"])
    # Written from what the scan loaded of the tag, without loading the rest of it row by row.
    assert not [q["sql"] for q in queries if 'WHERE "manifests_tag"."id" = ' in q["sql"]]
    tag.refresh_from_db()
    assert "cannot connect" in tag.error and tag.digest == pushed.digest
    running.start()
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="scanstop", params={}).pk)
    tag.refresh_from_db()
    registry.refresh_from_db()
    assert tag.error == "" and registry.last_scan_error == ""


@pytest.fixture
def redis_down(settings, monkeypatch):
    """The broker URL points at a port where nothing listens: Redis is down for this test."""
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(queue, "_last", (0.0, False))
    monkeypatch.setattr(queue, "_CACHE_SECONDS", 0.0)


@pytest.mark.django_db
def test_with_redis_down_pages_serve_the_inventory_and_nothing_is_queued_into_the_void(client, redis_down,
                                                                                       fresh_registry):
    running = fresh_registry("anonymous")
    with running.client() as registry_client:
        image_push(registry_client, repository="offline/amd64", tag="v1", platform=PLATFORMS[0])
        image_push(registry_client, repository="offline/arm64", tag="v1", platform=PLATFORMS[1])
        registry = Registry.objects.create(name="offline", url=running.url, insecure=True)
        for name in ("offline/amd64", "offline/arm64"):  # in the inventory: the push is valid
            repository_scan(client=registry_client, registry=registry, name=name)
    user = User.objects.create_user("pat")
    user.groups.add(Group.objects.get(name="pusher"))
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200 and "task queue (Redis) is unreachable" in page.content.decode()
    response = client.post(f"/registries/{registry.name}/scan", follow=True)
    assert "scans and pushes cannot start now" in response.content.decode()

    sources = ["offline/amd64:v1", "offline/arm64:v1"]
    api = client.post("/api/v1/lists", data={"registry": "offline", "target": "offline/list:v1",
                                             "sources": [{"reference": s} for s in sources]},
                      content_type="application/json")
    assert api.status_code == 503, api.content  # checked against the inventory, then refused by the queue
    assert "task queue (Redis) is unreachable" in api.json()["error"]
    form = {"registry": "offline", "target": "offline/list:v1", "format": "auto", "expect_digest": "",
            "e_key": ["a", "b"], "e_ref": sources}
    built = client.post("/build/push", data=form).content.decode()
    # The list is valid (no "The list has problems"): the queue refused it, in its own words.
    assert "The list has problems" not in built and "scans and pushes cannot start now" in built
    assert not Job.objects.exists() and not PushRecord.objects.exists()
    with running.client() as registry_client:
        assert "offline/list" not in list(registry_client.catalog())
