"""Hostile or broken registries: every fault is a per-item error, the rest is scanned, nothing answers 500.

The registry here is tests/faults/hostile.py: a real Docker Distribution
cannot be made to misbehave on cue. Most cases scan one repository in-process
(with a short client timeout where a test waits on one); the last tests send
the whole hostile registry, and a push from it, through the real Celery worker.

At the end of the module the figures (cases tried, faults the hostile server
actually sent, good items checked and lost) are written to
test-artifacts/faults.json for the README.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import pytest

from manifests.models import Job, Registry, Repository, Tag
from manifests.services.assemble import SourceSpec
from manifests.services.jobs import job_create
from manifests.services.push import push_job_create
from manifests.services.registries import registry_client
from manifests.services.scan import repository_scan, scan_enqueue, scan_job_run
from registry import client as client_module
from registry.client import MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES
from tests.faults.hostile import (
    BAD_NAMES,
    BAD_TAGS,
    MAX_STREAM_BYTES,
    SCRIPT,
    STREAM_CHUNK,
    UNKNOWN_TYPE,
    Good,
    HostileRegistry,
    MiB,
)

HOSTILE_MARKUP = (SCRIPT, "<img src=x")


# -- figures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def figures(artifacts_dir):
    cases: dict[str, dict] = {}
    yield cases
    faults: dict[str, int] = {}
    for case in cases.values():
        for kind, count in case["faults"].items():
            faults[kind] = faults.get(kind, 0) + count
    streams = [record for case in cases.values() for record in case["streams"]]
    summary = {
        "cases_tried": len(cases),
        "oversize_bodies": {"refused": len(streams), "client_hung_up": sum(r["hung_up"] for r in streams),
                            "most_bytes_sent_of_one": max((r["sent"] for r in streams), default=0),
                            "bytes_offered_by_the_endless_ones": MAX_STREAM_BYTES},
        "faults_injected": sum(faults.values()),
        "faults_by_kind": dict(sorted(faults.items())),
        "good_items_checked": sum(case["good_checked"] for case in cases.values()),
        "items_lost": sum(len(case["lost"]) for case in cases.values()),
        "cases": cases,
    }
    (artifacts_dir / "faults.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _record(figures: dict, request, hostile: HostileRegistry, *, checked: list[Good], lost: list[str]) -> None:
    figures[request.node.name] = {"faults": dict(hostile.faults), "faults_injected": hostile.faults_sent,
                                  "good_checked": len(checked), "lost": lost,
                                  "streams": [asdict(record) for record in hostile.streams]}


def _in_flight() -> int:
    """Bytes the kernels may hold between the server's write and the client's read.

    The server counts what it wrote to its socket, not what the client read:
    the client's receive window (up to tcp_rmem's maximum, grown while it
    reads) and the server's small send buffer sit in between, and requests
    reads ahead a little.
    """
    try:
        window = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        window = 6 * MiB  # Linux's default maximum
    return window + 4 * STREAM_CHUNK + MiB


def _unread_bound() -> int:
    """What a server can write to a client that reads nothing: the client's
    initial receive window and the server's initial send buffer (neither grows
    without reads), doubled for slack, and never under 1 MiB."""
    try:
        rmem = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[1])
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        rmem, wmem = 131072, 16384  # Linux's defaults
    return max(MiB, 2 * (rmem + wmem) + 4 * STREAM_CHUNK)


def _hung_up(record, timeout: float = 5.0):
    """The stream record once its server thread has noticed the client hang up."""
    deadline = time.monotonic() + timeout
    while not record.hung_up and time.monotonic() < deadline:
        time.sleep(0.02)
    return record


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def hostile():
    server = HostileRegistry(hang_seconds=5).start()
    yield server
    server.stop()


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer"))
    return client


def _registry(hostile: HostileRegistry, name: str = "hostile") -> Registry:
    return Registry.objects.create(name=name, url=hostile.url, insecure=True)


def _scan(registry: Registry, repository: str, **client_options) -> dict:
    with registry_client(registry=registry, **client_options) as client:
        return repository_scan(client=client, registry=registry, name=repository)


def _tag(registry: Registry, repository: str, tag: str) -> Tag | None:
    return Tag.objects.filter(repository__registry=registry, repository__name=repository, name=tag).first()


def _error(registry: Registry, repository: str, tag: str) -> str:
    row = _tag(registry, repository, tag)
    assert row is not None, f"{repository}:{tag} was not recorded at all"
    assert row.error, f"{repository}:{tag} has no error"
    return row.error


def _lost(registry: Registry, goods: list[Good]) -> list[str]:
    """The good tags not stored exactly as the registry serves them."""
    lost = []
    for good in goods:
        row = _tag(registry, good.repository, good.tag)
        if row is None or row.error or row.digest != good.digest or row.kind != good.kind \
                or tuple(row.platforms) != good.platforms:
            lost.append(f"{good.repository}:{good.tag}")
    return lost


def _goods(hostile: HostileRegistry, *repositories: str) -> list[Good]:
    return [good for good in hostile.good if good.repository in repositories]


def _check_good(figures, request, hostile: HostileRegistry, registry: Registry, *repositories: str) -> None:
    goods = _goods(hostile, *repositories)
    assert goods, "every case has good items beside its faults"
    lost = _lost(registry, goods)
    _record(figures, request, hostile, checked=goods, lost=lost)
    assert lost == []


def _pages_answer(client, registry: Registry, *, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Every page and API answer about `registry`: all 200, hostile markup never raw in HTML."""
    name = registry.name
    urls = ["/", f"/registries/{name}/", f"/coverage?registry={name}", f"/api/v1/registries/{name}/repositories",
            f"/api/v1/coverage?registry={name}", "/jobs/", *extra]
    for repository in Repository.objects.filter(registry=registry):
        repo = quote(repository.name)
        urls.append(f"/registries/{name}/r/{repo}/")
        for tag in repository.tags.all():
            urls.append(f"/registries/{name}/r/{repo}/t/{quote(tag.name)}")
            urls.append(f"/api/v1/registries/{name}/repositories/{repo}/tags/{quote(tag.name)}")
    answers = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:500])
        body = response.content.decode()
        if url.startswith("/api/"):
            assert response["Content-Type"] == "application/json"
            assert response["X-Content-Type-Options"] == "nosniff"  # JSON is never sniffed as HTML
        else:
            for markup in HOSTILE_MARKUP:
                assert markup not in body, f"{url} shows {markup!r} unescaped"
        answers[url] = body
    return answers


# -- one case each ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_manifest_whose_bytes_do_not_match_its_digest_is_a_per_tag_error_and_the_rest_is_scanned(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    counts = _scan(registry, "bad/digest")
    assert counts["errors"] == 2
    lying = _error(registry, "bad/digest", "lying")
    assert lying.startswith("DIGEST_MISMATCH: ") and "has bytes whose digest is" in lying
    assert _error(registry, "bad/digest", "child-lies").startswith("DIGEST_MISMATCH: ")
    assert _tag(registry, "bad/digest", "lying").digest == ""  # nothing of the lie was stored
    assert hostile.faults["digest header does not match the bytes"] == 1
    assert hostile.faults["bytes fetched by digest are other bytes"] == 1
    # A re-scan asks again (nothing of a failed tag was kept as "known") and the errors stay.
    _scan(registry, "bad/digest")
    assert hostile.faults["bytes fetched by digest are other bytes"] == 2
    assert _error(registry, "bad/digest", "child-lies").startswith("DIGEST_MISMATCH: ")
    assert _error(registry, "bad/digest", "lying").startswith("DIGEST_MISMATCH: ")
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/digest")


@pytest.mark.django_db
def test_a_media_type_that_disagrees_with_content_type_is_a_per_tag_error(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/mediatype")
    error = _error(registry, "bad/mediatype", "mismatch")
    assert error.startswith("MEDIA_TYPE_MISMATCH: ")
    assert "application/vnd.docker.distribution.manifest.v2+json" in error
    assert "application/vnd.oci.image.index.v1+json" in error
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/mediatype")


@pytest.mark.django_db
def test_malformed_json_cut_short_or_nested_too_deep_is_a_per_tag_error(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/json")
    assert _error(registry, "bad/json", "broken").startswith("MANIFEST_INVALID: manifest is not valid JSON")
    assert _error(registry, "bad/json", "nested") == "MANIFEST_INVALID: manifest JSON is nested too deeply"
    assert hostile.faults["malformed JSON"] == 2
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/json")


@pytest.mark.django_db
def test_a_manifest_over_4_mib_is_refused_without_reading_it_all(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/huge")
    declared = _error(registry, "bad/huge", "declared")
    assert declared == f"TOO_LARGE: manifest is {5 * 1024 * 1024} bytes, over the {MAX_MANIFEST_BYTES} byte limit"
    assert _error(registry, "bad/huge", "chunked") == f"TOO_LARGE: manifest is over the {MAX_MANIFEST_BYTES} byte limit"
    # Declared too big: refused on the headers; what got out fits in the socket buffers of a client
    # that read nothing.
    [sent] = hostile.stream_for("/v2/bad/huge/manifests/declared")
    assert _hung_up(sent).hung_up and sent.sent < _unread_bound(), sent
    # No length: read up to the cap, then hung up, far short of the endless body.
    [sent] = hostile.stream_for("/v2/bad/huge/manifests/chunked")
    assert _hung_up(sent).hung_up and sent.sent < min(MAX_MANIFEST_BYTES + _in_flight(), MAX_STREAM_BYTES), sent
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/huge")


@pytest.mark.django_db
def test_a_config_over_its_cap_is_refused_without_reading_it_all(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/config")
    assert _error(registry, "bad/config", "big") == \
        f"TOO_LARGE: blob is {9 * 1024 * 1024} bytes, over the {MAX_CONFIG_BYTES} byte limit"
    assert _error(registry, "bad/config", "big-chunked") == f"TOO_LARGE: blob is over the {MAX_CONFIG_BYTES} byte limit"
    declared, chunked = sorted(
        (record for record in hostile.streams if "/blobs/" in record.path), key=lambda r: r.declared is None)
    assert _hung_up(declared).hung_up and declared.sent < _unread_bound(), declared
    assert _hung_up(chunked).hung_up and chunked.sent < min(MAX_CONFIG_BYTES + _in_flight(), MAX_STREAM_BYTES), chunked
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/config")


@pytest.mark.django_db
def test_a_config_that_is_not_json_is_a_per_tag_error_and_an_impossible_date_is_dropped(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/config")
    error = _error(registry, "bad/config", "not-json")
    assert error.startswith("CONTENT_INVALID: blob sha256:") and error.endswith(" is not JSON")
    # "2024-13-45T99:99:99Z" is no date, and year 1 at +14:00 is before any the database holds:
    # the images are stored, without a creation time.
    for tag in ("bad-created", "overflow-created"):
        dated = _tag(registry, "bad/config", tag)
        assert dated.error == "" and dated.created is None and dated.platforms == ["linux/amd64"], tag
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/config")


@pytest.mark.django_db
def test_fields_longer_than_any_real_one_are_a_per_tag_error_and_never_reach_the_database(hostile, viewer, figures,
                                                                                         request):
    # PostgreSQL refuses a value longer than its column, and would fail the whole repository's transaction.
    registry = _registry(hostile)
    _scan(registry, "bad/fields")
    assert _error(registry, "bad/fields", "long-platform") == \
        "MANIFEST_INVALID: manifests[0] has a platform architecture longer than 64 characters"
    assert _error(registry, "bad/fields", "long-type") == \
        "MANIFEST_INVALID: manifests[0] has a mediaType longer than 255 characters"
    # sha512 has 128 hex digits exactly: a longer one is refused by the digest grammar itself.
    assert _error(registry, "bad/fields", "long-digest") == "MANIFEST_INVALID: manifests[0] has an invalid digest"
    # A config naming an architecture no one runs: the image is stored, without a platform.
    assert _tag(registry, "bad/fields", "long-config").platforms == []
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/fields")


@pytest.mark.django_db
def test_an_unknown_media_type_is_a_per_tag_error_naming_the_type(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "bad/unknown-type")
    assert _error(registry, "bad/unknown-type", "thing") == \
        f"MANIFEST_INVALID: unsupported manifest media type '{UNKNOWN_TYPE}'"
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/unknown-type")


@pytest.mark.django_db
def test_a_registry_that_hangs_times_out_within_a_bound_and_the_rest_is_scanned(hostile, viewer, figures, request):
    registry = _registry(hostile)
    timeout, retries = 1.0, 2
    started = time.monotonic()
    _scan(registry, "slow/hang", timeout=timeout, max_retries=retries)
    elapsed = time.monotonic() - started
    assert _error(registry, "slow/hang", "stuck") == "TIMEOUT: the registry did not answer within 1 s"
    assert hostile.count("GET", "/v2/slow/hang/manifests/stuck") == 1 + retries
    # Each try waits the timeout (1 s), with 0.25 s and 0.5 s of backoff between:
    # about 3.75 s, where waiting out the hangs would take 3 x 5 s. The margin is
    # for a loaded machine (the scan also lists and fetches the good tags).
    assert elapsed < 10, elapsed
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "slow/hang")


@pytest.mark.django_db
def test_connection_resets_are_retried_and_one_that_never_stops_is_a_per_tag_error(hostile, viewer, figures,
                                                                                  request):
    registry = _registry(hostile)
    _scan(registry, "flaky/reset")
    assert hostile.count("GET", "/v2/flaky/reset/manifests/twice") == 3  # two resets, then the answer
    error = _error(registry, "flaky/reset", "always")
    assert error.startswith("CONNECTION_FAILED: ") and hostile.url.removeprefix("http://") in error
    assert hostile.count("GET", "/v2/flaky/reset/manifests/always") == 4  # the first try and 3 retries
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "flaky/reset")


@pytest.mark.django_db
def test_5xx_answers_are_retried_with_backoff_and_a_lasting_one_shows_the_registrys_message(hostile, viewer,
                                                                                            figures, request):
    registry = _registry(hostile)
    _scan(registry, "flaky/5xx")
    assert hostile.count("GET", "/v2/flaky/5xx/manifests/twice") == 3
    assert _error(registry, "flaky/5xx", "always") == f"storage backend on fire {SCRIPT}"
    assert hostile.count("GET", "/v2/flaky/5xx/manifests/always") == 4
    answers = _pages_answer(viewer, registry)
    assert "storage backend on fire &lt;script&gt;" in answers["/registries/hostile/r/flaky/5xx/t/always"]
    api = json.loads(answers["/api/v1/registries/hostile/repositories/flaky/5xx/tags/always"])
    assert api["error"] == f"storage backend on fire {SCRIPT}"  # the registry's words, verbatim, in JSON
    _check_good(figures, request, hostile, registry, "flaky/5xx")


@pytest.mark.django_db
def test_429_with_retry_after_is_waited_out_and_one_asking_too_long_shows_the_registrys_message(hostile, viewer,
                                                                                                figures, request):
    registry = _registry(hostile)
    started = time.monotonic()
    _scan(registry, "limited/app")
    assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
    assert hostile.count("GET", "/v2/limited/app/manifests/v1") == 3
    assert _error(registry, "limited/app", "forever") == \
        "TOOMANYREQUESTS: pull rate limit exceeded: come back in an hour"
    assert hostile.count("GET", "/v2/limited/app/manifests/forever") == 1  # an hour is over max_retry_wait
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "limited/app")


@pytest.mark.django_db
def test_a_tag_list_whose_link_loops_is_a_per_repository_error_within_two_pages(hostile, viewer, figures, request):
    registry = _registry(hostile)
    for repository in ("loop/tags", "loop/pages"):
        counts = _scan(registry, repository)
        row = Repository.objects.get(registry=registry, name=repository)
        assert row.error.startswith("PAGINATION_LOOP: "), row.error
        assert counts == {"tags": 0, "errors": 1, "note": row.error}
        assert not row.tags.exists()
    # The same URL again is seen before it is asked; a new URL repeating the page is seen on its answer.
    assert hostile.count("GET", "/v2/loop/tags/tags/list") == 1
    assert hostile.count("GET", "/v2/loop/pages/tags/list") == 2
    _scan(registry, "good/app")  # the rest of the registry is unaffected
    answers = _pages_answer(viewer, registry)
    assert "PAGINATION_LOOP" in answers["/registries/hostile/"]
    _check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_a_tag_list_that_never_ends_stops_at_the_clients_page_cap(hostile, viewer, figures, request, monkeypatch):
    # Ten new names a page, forever: no loop to detect, only the page cap bounds it. The real cap
    # (10,000 pages) would take minutes here; the mechanism is the same at 20.
    monkeypatch.setattr(client_module, "MAX_PAGES", 20)
    registry = _registry(hostile)
    counts = _scan(registry, "loop/endless")
    assert counts == {"tags": 0, "errors": 1, "note": "PAGINATION_LOOP: more than 20 pages"}
    assert Repository.objects.get(registry=registry, name="loop/endless").error == counts["note"]
    assert hostile.count("GET", "/v2/loop/endless/tags/list") == 20
    _scan(registry, "good/app")
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_repository_names_that_break_the_grammar_are_skipped_with_an_error_and_never_requested(viewer, figures,
                                                                                                request):
    with HostileRegistry(catalog=["good/app", *BAD_NAMES]) as hostile:
        registry = _registry(hostile)
        job = job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name, params={})
        scan_job_run(job_id=job.pk)
        job.refresh_from_db()
        registry.refresh_from_db()
    assert job.status == Job.STATUS_SUCCEEDED, job.error
    assert list(Repository.objects.filter(registry=registry).values_list("name", flat=True)) == ["good/app"]
    # Nothing was asked about them: no path outside /v2/, nothing but the catalog and good/app.
    assert hostile.escaped == []
    others = [key for key in hostile.requests
              if key not in ("GET /v2/", "GET /v2/_catalog") and not key.split(" ", 1)[1].startswith("/v2/good/app/")]
    assert others == []
    skipped = {step["name"]: step["note"] for step in job.steps if step["event"] == "skipped"}
    assert set(skipped) == set(BAD_NAMES)
    assert all("not a valid repository name" in note or "longer than" in note for note in skipped.values())
    assert f"{len(BAD_NAMES)} names" in registry.last_scan_error and "UPPER/Case" in registry.last_scan_error
    answers = _pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))
    assert "UPPER/Case" in answers["/"] and "html/&lt;script&gt;" in answers[f"/jobs/{job.pk}/"]
    _check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_html_in_tag_names_annotations_and_error_messages_is_escaped_and_kept_verbatim_in_the_api(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "html/app")
    repository = Repository.objects.get(registry=registry, name="html/app")
    # Tag names that break the grammar are not stored (no page could link to them) but are named.
    assert sorted(repository.tags.values_list("name", flat=True)) == ["err", "ok"]
    assert repository.error.startswith(f"skipped {len(BAD_TAGS)} tag names that break the grammar: ")
    assert SCRIPT in repository.error
    assert _error(registry, "html/app", "err") == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    ok = _tag(registry, "html/app", "ok")
    assert ok.manifest.children.get().annotations == {"org.opencontainers.image.title": SCRIPT}
    answers = _pages_answer(viewer, registry)
    detail = answers["/registries/hostile/r/html/app/t/ok"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "&lt;script&gt;" in answers["/registries/hostile/"]  # the skipped tag names, escaped
    api = json.loads(answers["/api/v1/registries/hostile/repositories/html/app/tags/err"])
    assert api["error"] == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    _check_good(figures, request, hostile, registry, "html/app")


# -- the whole registry, through the real worker -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_whole_hostile_registry_through_the_worker_loses_nothing_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, settings, figures, request):
    # The worker reads REGISTRY_TIMEOUT_SECONDS at start, as this process did: slow/hang:stuck holds its
    # first request past that timeout, and answers the retry.
    with HostileRegistry(hang_seconds=settings.REGISTRY_TIMEOUT_SECONDS + 2, hang_times=1) as hostile:
        registry = _registry(hostile)
        job = wait_job(scan_enqueue(registry=registry).pk, timeout=150)
        assert celery_worker.process.poll() is None, celery_worker.log()[-3000:]
        assert job.status == Job.STATUS_SUCCEEDED, (job.error, celery_worker.log()[-3000:])
        registry.refresh_from_db()

        # Every bad item has its own error, with the registry's code or message where it gave one.
        listed = [name for name in hostile.catalog if name not in BAD_NAMES]
        for (repository, tag), code in hostile.expected_errors.items():
            if repository not in listed:
                continue
            if tag:
                error = _error(registry, repository, tag)
            else:
                error = Repository.objects.get(registry=registry, name=repository).error
            assert error.startswith(f"{code}: ") or (code == "UNAVAILABLE" and "storage backend on fire" in error), \
                (repository, tag, error)
        assert _error(registry, "flaky/5xx", "always") == f"storage backend on fire {SCRIPT}"
        assert _error(registry, "limited/app", "forever").endswith("pull rate limit exceeded: come back in an hour")
        assert hostile.count("GET", "/v2/slow/hang/manifests/stuck") == 2  # timed out once, then answered
        assert {step["name"] for step in job.steps if step["event"] == "skipped"} == set(BAD_NAMES), job.steps[:8]
        assert hostile.escaped == []
        assert job.result["errors"] == sum(1 for (r, _) in hostile.expected_errors if r in listed)

        # Pages and API answers: 200 everywhere, hostile markup escaped.
        _pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))

        # The worker is alive and runs another job.
        again = wait_job(scan_enqueue(registry=registry, repository="good/app").pk, timeout=60)
        assert again.status == Job.STATUS_SUCCEEDED, again.error
        assert celery_worker.process.poll() is None
        _check_good(figures, request, hostile, registry, *listed)


@pytest.mark.django_db(transaction=True)
def test_a_push_whose_source_is_on_the_hostile_registry_fails_clearly_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, figures, request):
    with HostileRegistry(catalog=["good/app", "good/other", "bad/digest"]) as hostile:
        registry = _registry(hostile)
        lying = push_job_create(registry=registry, target="good/list:v1", fmt="auto", annotations={},
                                sources=[SourceSpec("good/app:v1"), SourceSpec("bad/digest:lying")],
                                expect_digest="")
        lying = wait_job(lying.pk)
        assert lying.status == Job.STATUS_FAILED
        assert lying.error.startswith("registry error: DIGEST_MISMATCH: manifest bad/digest@"), lying.error
        # Good sources, but the registry refuses every write: the registry's own code and message.
        refused = push_job_create(registry=registry, target="good/list:v1", fmt="auto", annotations={},
                                  sources=[SourceSpec("good/app:v1"), SourceSpec("good/other:1.0")],
                                  expect_digest="")
        refused = wait_job(refused.pk)
        assert refused.status == Job.STATUS_FAILED
        assert refused.error == "registry error: UNSUPPORTED: this registry is read-only", refused.error
        assert celery_worker.process.poll() is None
        scan = wait_job(scan_enqueue(registry=registry).pk)
        assert scan.status == Job.STATUS_SUCCEEDED, scan.error
        for job in (lying, refused):
            answers = _pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))
            assert job.error.split(": ")[1] in answers[f"/jobs/{job.pk}/"]
        assert not Tag.objects.filter(repository__name="good/list").exists()
        _check_good(figures, request, hostile, registry, "good/app", "good/other", "bad/digest")
