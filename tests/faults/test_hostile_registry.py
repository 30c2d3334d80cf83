"""Hostile or broken registries: every fault is a per-item error, the rest is scanned, nothing answers 500.

The registry here is tests/faults/hostile.py: a real Docker Distribution
cannot be made to misbehave on cue. Most cases scan one repository in-process
(with a short client timeout where a test waits on one); the last tests send
the whole hostile registry, and a push from it, through the real Celery worker.

The second origin of the hostile server (another port of the same host)
is where it points credentials: pagination Links, upload Locations, blob
redirects, a moved token realm. Each such test asserts, from what that
server recorded, that no Authorization reached it.

The last test of the module asserts the figures the README states (cases
tried, faults the hostile server actually sent, good items checked and lost,
the most bytes the client read of one oversize body) and writes them to
test-artifacts/faults.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict
from urllib.parse import quote

import pytest
from django.core.management import call_command

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry, Repository, Tag
from manifests.scan.fanout import scan_submit
from manifests.scan.repository import repository_scan
from manifests.services.assemble import SourceSpec
from manifests.services.push import push_submit
from manifests.services.registries import registry_client
from registry import RegistryClient, errors
from registry import client as client_module
from registry.client import (
    MAX_CONFIG_BYTES,
    MAX_ERROR_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_PAGE_BYTES,
    MAX_TOKEN_BYTES,
    READ_CHUNK,
)
from tests.faults.hostile import (
    BAD_NAMES,
    BAD_TAGS,
    MAX_HANG_SECONDS,
    MAX_STREAM_BYTES,
    PASSWORD,
    SCRIPT,
    UNKNOWN_TYPE,
    USER,
    Good,
    HostileRegistry,
    Reply,
)
from tests.harness.tls import certificate_authority

HOSTILE_MARKUP = (SCRIPT, "<img src=x")


# -- figures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def figures():
    """Every case's figures. Session-wide: pytest-django runs database tests first, then transactional
    ones, then the rest, so a module-scoped dict would be made anew each time the run comes back here."""
    cases: dict[str, dict] = {}
    return cases


def _summary(cases: dict[str, dict]) -> dict:
    faults: dict[str, int] = {}
    for case in cases.values():
        for kind, count in case["faults"].items():
            faults[kind] = faults.get(kind, 0) + count
    streams = [record for case in cases.values() for record in case["streams"]]
    return {
        "cases_tried": len(cases),
        "oversize_bodies": {
            "refused": len(streams),
            "client_hung_up": sum(r["hung_up"] for r in streams),
            "most_bytes_the_client_read_of_one_body": max(
                (n for case in cases.values() for n in case["largest_bodies"].values()), default=0),
            "bytes_offered_by_the_endless_ones": MAX_STREAM_BYTES,
        },
        "faults_injected": sum(faults.values()),
        "fault_kinds": len(faults),
        "faults_by_kind": dict(sorted(faults.items())),
        "good_items_checked": sum(case["good_checked"] for case in cases.values()),
        "items_lost": sum(len(case["lost"]) for case in cases.values()),
        "cases": cases,
    }


def _record(figures: dict, request, hostile: HostileRegistry, *, checked: list[Good], lost: list[str],
            client: RegistryClient | None = None) -> None:
    figures[request.node.name] = {"faults": dict(hostile.faults), "faults_injected": hostile.faults_sent,
                                  "good_checked": len(checked), "lost": lost,
                                  "largest_bodies": dict(client.largest_body) if client else {},
                                  "streams": [asdict(record) for record in hostile.streams]}


def _read_at_most(client: RegistryClient, op: str, cap: int) -> int:
    """The most bytes the client itself read of one `op` body: the cap and one read chunk, at most.

    Counted by the client, not by the server: what the kernels buffer between them is never read."""
    largest = client.largest_body[op]
    assert largest <= cap + READ_CHUNK, (op, largest, cap)
    return largest


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


def _registry(hostile: HostileRegistry, name: str = "hostile", *, auth: str = Registry.AUTH_ANONYMOUS) -> Registry:
    registry = Registry(name=name, url=hostile.url, insecure=True, auth=auth)
    if auth != Registry.AUTH_ANONYMOUS:
        registry.username = USER
        registry.set_secret(PASSWORD)
    registry.save()
    return registry


def _scan_client(registry: Registry, repository: str, **client_options) -> tuple[dict, RegistryClient]:
    with registry_client(registry=registry, **client_options) as client:
        return repository_scan(client=client, registry=registry, name=repository), client


def _scan(registry: Registry, repository: str, **client_options) -> dict:
    return _scan_client(registry, repository, **client_options)[0]


def _no_credentials_reached_the_other_origin(hostile: HostileRegistry) -> list:
    """What the second origin received: never an Authorization header, nor the password anywhere."""
    seen = hostile.seen_by("other")
    assert [s for s in seen if s.authorization] == [], seen
    assert not any(PASSWORD in value for s in seen for value in (*s.headers.values(), s.path, s.query)), seen
    return seen


def _credentials_were_sent_to_the_registry(hostile: HostileRegistry, path_part: str) -> None:
    """The registry's own origin did get them: the case had credentials to leak."""
    assert any(path_part in s.path and s.authorization for s in hostile.seen_by("registry")), hostile.seen


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


def _check_good(figures, request, hostile: HostileRegistry, registry: Registry, *repositories: str,
                client: RegistryClient | None = None) -> None:
    goods = _goods(hostile, *repositories)
    assert goods, "every case has good items beside its faults"
    lost = _lost(registry, goods)
    _record(figures, request, hostile, checked=goods, lost=lost, client=client)
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
    _, client = _scan_client(registry, "bad/huge")
    declared = _error(registry, "bad/huge", "declared")
    assert declared == f"TOO_LARGE: manifest is {5 * 1024 * 1024} bytes, over the {MAX_MANIFEST_BYTES} byte limit"
    assert _error(registry, "bad/huge", "chunked") == f"TOO_LARGE: manifest is over the {MAX_MANIFEST_BYTES} byte limit"
    # Declared too big: refused on the headers, nothing of the body read. No length: read up to the
    # cap (and one chunk), then hung up, far short of the endless body.
    assert _read_at_most(client, "GET manifest", MAX_MANIFEST_BYTES) > MAX_MANIFEST_BYTES
    endless = [record for record in hostile.streams if record.declared is None]
    assert len(endless) == 1 and _hung_up(endless[0]).hung_up, hostile.streams
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/huge", client=client)


@pytest.mark.django_db
def test_a_config_over_its_cap_is_refused_without_reading_it_all(hostile, viewer, figures, request):
    registry = _registry(hostile)
    _, client = _scan_client(registry, "bad/config")
    assert _error(registry, "bad/config", "big") == \
        f"TOO_LARGE: blob is {9 * 1024 * 1024} bytes, over the {MAX_CONFIG_BYTES} byte limit"
    assert _error(registry, "bad/config", "big-chunked") == f"TOO_LARGE: blob is over the {MAX_CONFIG_BYTES} byte limit"
    assert _read_at_most(client, "GET blob", MAX_CONFIG_BYTES) > MAX_CONFIG_BYTES
    endless = [record for record in hostile.streams if "/blobs/" in record.path and record.declared is None]
    assert len(endless) == 1 and _hung_up(endless[0]).hung_up, hostile.streams
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/config", client=client)


@pytest.mark.django_db
def test_a_config_that_is_not_json_is_a_per_tag_error(hostile, viewer, figures, request):
    # Impossible creation dates are pushed to a real registry: tests/faults/test_real_registry_content.py.
    registry = _registry(hostile)
    _scan(registry, "bad/config")
    error = _error(registry, "bad/config", "not-json")
    assert error.startswith("CONTENT_INVALID: blob sha256:") and error.endswith(" is not JSON")
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
    # Over-long config fields are pushed to a real registry: tests/faults/test_real_registry_content.py.
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
        job_run(inline=True, job_id=job.pk)
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
def test_html_in_tag_names_and_error_messages_is_escaped_and_kept_verbatim_in_the_api(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    _scan(registry, "html/app")
    repository = Repository.objects.get(registry=registry, name="html/app")
    # Tag names that break the grammar are not stored (no page could link to them) but are named.
    assert sorted(repository.tags.values_list("name", flat=True)) == ["err", "ok"]
    assert repository.error.startswith(f"skipped {len(BAD_TAGS)} tag names that break the grammar: ")
    assert SCRIPT in repository.error
    assert _error(registry, "html/app", "err") == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    # Script in annotations is pushed to a real registry: tests/faults/test_real_registry_content.py.
    answers = _pages_answer(viewer, registry)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answers["/registries/hostile/r/html/app/t/err"]
    assert "&lt;script&gt;" in answers["/registries/hostile/"]  # the skipped tag names, escaped
    api = json.loads(answers["/api/v1/registries/hostile/repositories/html/app/tags/err"])
    assert api["error"] == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    _check_good(figures, request, hostile, registry, "html/app")


# -- credentials stay with their origin -------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return certificate_authority(tmp_path_factory.mktemp("hostile-tls"))


@pytest.fixture
def basic_hostile():
    server = HostileRegistry(auth="basic").start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_case_cross_origin_tag_list_link_is_a_per_repository_error_and_the_other_origin_gets_nothing(
        basic_hostile, viewer, figures, request):
    hostile = basic_hostile
    registry = _registry(hostile, auth=Registry.AUTH_BASIC)
    counts = _scan(registry, "cross/link")
    row = Repository.objects.get(registry=registry, name="cross/link")
    assert row.error == (f"PAGINATION_CROSS_ORIGIN: the next page of /v2/cross/link/tags/list is on "
                         f"{hostile.other_url}, not on the registry's own origin {hostile.url}: not followed")
    assert counts["errors"] == 1 and not row.tags.exists()
    _credentials_were_sent_to_the_registry(hostile, "/v2/cross/link/tags/list")
    assert _no_credentials_reached_the_other_origin(hostile) == []  # not even asked
    _scan(registry, "good/app")
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_case_cross_origin_catalog_link_fails_the_listing_and_the_other_origin_gets_nothing(
        basic_hostile, figures, request):
    hostile = basic_hostile
    hostile.link_catalog_to_other()
    registry = _registry(hostile, auth=Registry.AUTH_BASIC)
    job = job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name, params={})
    job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED
    assert job.error.startswith("cannot list repositories: PAGINATION_CROSS_ORIGIN: the next page of /v2/_catalog "
                                f"is on {hostile.other_url}"), job.error
    _credentials_were_sent_to_the_registry(hostile, "/v2/_catalog")
    assert _no_credentials_reached_the_other_origin(hostile) == []
    _record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_case_cross_origin_upload_location_is_followed_without_authorization(basic_hostile, figures, request):
    hostile = basic_hostile
    registry = _registry(hostile, auth=Registry.AUTH_BASIC)
    data = b"a blob to upload\n"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with registry_client(registry=registry) as client:
        client.upload_blob("cross/upload", digest, data)
    _credentials_were_sent_to_the_registry(hostile, "/v2/cross/upload/blobs/uploads/")
    [put] = _no_credentials_reached_the_other_origin(hostile)
    assert (put.method, put.path) == ("PUT", "/upload/cross")
    assert put.query == f"state=1&digest={quote(digest)}"  # the Location kept as given, digest= appended
    _record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_case_cross_origin_blob_redirect_is_followed_without_authorization(basic_hostile, viewer, figures, request):
    hostile = basic_hostile
    registry = _registry(hostile, auth=Registry.AUTH_BASIC)
    _scan(registry, "cross/redirect")
    assert hostile.faults["blob redirect to another origin"] == 1  # the config (a scan reads no layer)
    _credentials_were_sent_to_the_registry(hostile, "/v2/cross/redirect/blobs/")
    cdn = _no_credentials_reached_the_other_origin(hostile)
    assert cdn and all(seen.path.startswith("/cdn/sha256:") for seen in cdn)
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "cross/redirect")


def test_case_downgrade_redirect_from_https_to_http_is_refused_unless_insecure_and_never_with_credentials(
        tls_files, figures, request):
    with HostileRegistry(auth="basic", tls=tls_files) as hostile:
        assert hostile.url.startswith("https://") and hostile.plain_url.startswith("http://")
        digest = "sha256:" + hashlib.sha256(hostile.downgraded).hexdigest()
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, ca_bundle=str(tls_files.ca_path)) as client:
            with pytest.raises(errors.RegistryUnavailable) as refused:
                client.get_blob("cross/downgrade", digest)
        assert refused.value.code == "DOWNGRADE_REFUSED"
        assert str(refused.value) == (f"DOWNGRADE_REFUSED: the registry redirected or pointed to plain http "
                                      f"({hostile.plain_url}): refused, as the registry is not marked insecure")
        assert [s.scheme for s in hostile.seen] == ["https", "https"]  # the 401, then the 307: nothing in plain
        assert hostile.seen[1].authorization
        # Marked insecure, the downgrade is followed, without the credentials.
        hostile.seen.clear()
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True) as client:
            assert client.get_blob("cross/downgrade", digest) == hostile.downgraded
        plain = [s for s in hostile.seen if s.scheme == "http"]
        assert [s.path for s in plain] == [f"/plain/{digest}"]
        assert not plain[0].authorization, plain
        assert any(s.authorization for s in hostile.seen if s.scheme == "https")
        _record(figures, request, hostile, checked=[], lost=[])


def _check(registry: Registry) -> Job:
    job = job_create(kind=Job.KIND_CHECK, registry=registry, target=registry.name, params={})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    registry.refresh_from_db()
    return job


@pytest.mark.django_db
def test_case_realm_change_fails_the_job_naming_both_origins_and_the_new_realm_gets_nothing(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        registry = _registry(hostile, auth=Registry.AUTH_TOKEN)
        first = _check(registry)
        assert first.status == Job.STATUS_SUCCEEDED, first.error
        assert registry.token_realm_origin == hostile.url  # recorded by the first check
        assert any(s.path == "/token" and s.authorization for s in hostile.seen_by("registry"))

        hostile.realm = f"{hostile.other_url}/token"
        expected = (f"TOKEN_REALM_CHANGED: the token realm moved from {hostile.url} to {hostile.other_url}: the "
                    f"credentials were not sent to {hostile.other_url}")
        second = _check(registry)
        assert second.status == Job.STATUS_FAILED
        assert second.error.startswith(f"registry error: {expected}"), second.error
        scan = job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name, params={})
        job_run(inline=True, job_id=scan.pk)
        scan.refresh_from_db()
        assert scan.status == Job.STATUS_FAILED and expected in scan.error, scan.error
        assert registry.token_realm_origin == hostile.url  # the recorded realm stays
        assert hostile.seen_by("other") == []
        # An admin who knows the realm really moved forgets it; the next check records the new one.
        out = io.StringIO()
        call_command("registry_forget_realm", registry.name, stdout=out)
        assert out.getvalue() == (f"forgot the token realm {hostile.url} of {registry.name}; the next check "
                                  "records the one it names\n")
        assert _check(registry).status == Job.STATUS_SUCCEEDED
        assert registry.token_realm_origin == hostile.other_url
        assert {s.path for s in hostile.seen_by("other")} == {"/token"}  # now the realm: the token requests
        _record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_a_token_realm_on_another_origin_is_recorded_at_the_first_check_and_trusted_after(figures, request):
    # Docker Hub's realm (auth.docker.io) is not its registry's host: that is fine, once recorded.
    with HostileRegistry(auth="bearer") as hostile:
        hostile.realm = f"{hostile.other_url}/token"
        registry = _registry(hostile, auth=Registry.AUTH_TOKEN)
        assert _check(registry).status == Job.STATUS_SUCCEEDED
        assert registry.token_realm_origin == hostile.other_url
        tokens = hostile.seen_by("other")
        assert tokens and all(s.path == "/token" for s in tokens)  # the realm gets the password, nothing else
        assert _check(registry).status == Job.STATUS_SUCCEEDED
        # The bearer token itself goes to the registry only.
        assert all(not s.authorization.startswith("Bearer") for s in hostile.seen_by("other"))


# -- bodies too big or too slow ------------------------------------------------------


@pytest.mark.django_db
def test_case_trickling_server_is_cut_off_at_the_request_deadline(hostile, viewer, figures, request):
    # One byte every 0.5 s never trips a 2 s socket timeout; only the total deadline ends it.
    registry = _registry(hostile)
    started = time.monotonic()
    _scan(registry, "slow/trickle", timeout=2, deadline=2)
    _scan(registry, "slow/trickle-list", timeout=2, deadline=2)
    elapsed = time.monotonic() - started
    for tag in ("body", "headers"):
        assert _error(registry, "slow/trickle", tag) == \
            "DEADLINE: the registry did not finish answering within 2 s", tag
        assert hostile.count("GET", f"/v2/slow/trickle/manifests/{tag}") == 1  # a deadline is not retried
    assert Repository.objects.get(registry=registry, name="slow/trickle-list").error == \
        "DEADLINE: the registry did not finish answering within 2 s"
    # Three answers that would each trickle on for MAX_HANG_SECONDS (30 s), cut at 2 s each.
    assert elapsed < 3 * 2 + 8 < MAX_HANG_SECONDS, elapsed
    assert all(record.sent < record.declared for record in hostile.streams), hostile.streams
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "slow/trickle")


@pytest.mark.django_db
def test_case_oversized_tag_list_page_is_a_per_repository_error_read_no_further_than_the_cap(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    _, client = _scan_client(registry, "huge/page")
    assert Repository.objects.get(registry=registry, name="huge/page").error == \
        f"TOO_LARGE: GET tags answer is over the {MAX_PAGE_BYTES} byte limit"
    assert _read_at_most(client, "GET tags", MAX_PAGE_BYTES) > MAX_PAGE_BYTES
    assert _hung_up(hostile.streams[0]).hung_up
    _scan(registry, "good/app")
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "good/app", client=client)


@pytest.mark.django_db
def test_case_oversized_error_body_is_read_only_up_to_1_mib_and_the_tag_gets_an_error(
        hostile, viewer, figures, request):
    registry = _registry(hostile)
    _, client = _scan_client(registry, "huge/error")
    assert _error(registry, "huge/error", "err") == "UNAVAILABLE: HTTP 500 Internal Server Error"
    assert hostile.count("GET", "/v2/huge/error/manifests/err") == 4  # a 5xx: the first try and 3 retries
    assert _read_at_most(client, "GET manifest", MAX_ERROR_BYTES) >= MAX_ERROR_BYTES
    assert client.body_bytes["GET manifest"] <= 4 * (MAX_ERROR_BYTES + READ_CHUNK) + 64 * 1024
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "huge/error", client=client)


def test_case_oversized_token_answer_is_refused_at_64_kib(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        hostile.token_reply = Reply(200, {"Content-Type": "application/json"}, stream=MAX_STREAM_BYTES,
                                    declare_length=False, fault="token answer over 64 KiB, chunked")
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True) as client:
            with pytest.raises(errors.ContentTooLarge) as refused:
                client.ping()
        assert str(refused.value) == f"TOO_LARGE: token answer is over the {MAX_TOKEN_BYTES} byte limit"
        assert _read_at_most(client, "GET token", MAX_TOKEN_BYTES) > MAX_TOKEN_BYTES
        assert _hung_up(hostile.streams[0]).hung_up
        _record(figures, request, hostile, checked=[], lost=[], client=client)


def test_case_trickling_token_service_is_cut_off_at_the_request_deadline(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        hostile.token_reply = Reply(200, {"Content-Type": "application/json"},
                                    json.dumps({"token": "t" * 200}).encode(), trickle="body",
                                    fault="token answer trickled")
        started = time.monotonic()
        with RegistryClient(hostile.url, username=USER, password=PASSWORD, insecure=True, timeout=2,
                            deadline=2) as client:
            with pytest.raises(errors.RegistryUnavailable) as cut:
                client.ping()
        assert str(cut.value) == "DEADLINE: the token service did not finish answering within 2 s"
        assert time.monotonic() - started < 2 + 8 < MAX_HANG_SECONDS
        _record(figures, request, hostile, checked=[], lost=[], client=client)


@pytest.mark.django_db
def test_case_too_many_names_in_one_repository_is_a_per_repository_error(hostile, viewer, figures, request,
                                                                        monkeypatch):
    # The real cap (100,000 names) would take 10,000 pages here; the mechanism is the same at 25.
    monkeypatch.setattr(client_module, "MAX_NAMES", 25)
    registry = _registry(hostile)
    counts = _scan(registry, "loop/endless")
    note = "TOO_MANY_NAMES: more than 25 names in /v2/loop/endless/tags/list: the rest is not read"
    assert counts == {"tags": 0, "errors": 1, "note": note}
    assert hostile.count("GET", "/v2/loop/endless/tags/list") == 3  # 10 names a page: the third passes 25
    _scan(registry, "good/app")
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "good/app")


# -- digests ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_case_md5_and_shake_digests_are_refused_as_a_per_tag_error(hostile, viewer, figures, request):
    registry = _registry(hostile)
    counts = _scan(registry, "bad/algorithm")
    assert counts["errors"] == 2
    for tag, algorithm in (("md5", "md5"), ("shake", "shake_128")):
        error = _error(registry, "bad/algorithm", tag)
        assert error.startswith("DIGEST_UNSUPPORTED: the digest the registry reports for bad/algorithm:"), error
        assert error.endswith(f"uses the digest algorithm '{algorithm}': only sha256 and sha512 are accepted")
        assert _tag(registry, "bad/algorithm", tag).digest == ""
    _pages_answer(viewer, registry)
    _check_good(figures, request, hostile, registry, "bad/algorithm")


def test_case_sha512_blobs_are_verified_when_fetched_and_when_streamed(hostile, figures, request):
    with RegistryClient(hostile.url, insecure=True) as client:
        assert client.get_blob("bad/algorithm", hostile.sha512_digest) == hostile.sha512_blob
        with pytest.raises(errors.DigestMismatch):
            client.get_blob("bad/algorithm", hostile.sha512_lying_digest)
        assert client.stream_blob("bad/algorithm", "sink/app", hostile.sha512_digest,
                                  len(hostile.sha512_blob)) == len(hostile.sha512_blob)
        with pytest.raises(errors.DigestMismatch):
            client.stream_blob("bad/algorithm", "sink/app", hostile.sha512_lying_digest, len(hostile.sha512_lie))
        for unsupported in ("md5:" + hashlib.md5(b"x").hexdigest(), "shake_128:" + "ab" * 32):
            with pytest.raises(errors.DigestMismatch) as refused:
                client.get_blob("bad/algorithm", unsupported)
            assert refused.value.code == "DIGEST_UNSUPPORTED"
    assert hostile.faults["sha512 blob whose bytes are other bytes"] == 2
    _record(figures, request, hostile, checked=[], lost=[])


# -- the whole registry, through the real worker -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_whole_hostile_registry_through_the_worker_loses_nothing_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, settings, figures, request):
    # The worker reads REGISTRY_TIMEOUT_SECONDS at start, as this process did: slow/hang:stuck holds its
    # first request past that timeout, and answers the retry.
    with HostileRegistry(hang_seconds=settings.REGISTRY_TIMEOUT_SECONDS + 2, hang_times=1) as hostile:
        registry = _registry(hostile)
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
        again = wait_job(scan_submit(registry=registry, repository="good/app").pk, timeout=60)
        assert again.status == Job.STATUS_SUCCEEDED, again.error
        assert celery_worker.process.poll() is None
        _check_good(figures, request, hostile, registry, *listed)


@pytest.mark.django_db(transaction=True)
def test_a_push_whose_source_is_on_the_hostile_registry_fails_clearly_and_the_worker_lives_on(
        celery_worker, wait_job, viewer, figures, request):
    with HostileRegistry(catalog=["good/app", "good/other", "bad/digest"]) as hostile:
        registry = _registry(hostile)
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
            answers = _pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))
            assert job.error.split(": ")[1] in answers[f"/jobs/{job.pk}/"]
        assert not Tag.objects.filter(repository__name="good/list").exists()
        _check_good(figures, request, hostile, registry, "good/app", "good/other", "bad/digest")


# -- the figures the README states ------------------------------------------------------


def test_the_fault_suite_figures_hold_and_are_written_for_the_readme(figures, artifacts_dir):
    """Runs last in the module: what the README states of the cases above is asserted, then written."""
    summary = _summary(figures)
    assert summary["cases_tried"] >= 1, "run with the module's other tests"
    assert summary["items_lost"] == 0, {name: case["lost"] for name, case in figures.items() if case["lost"]}
    assert all(case["faults_injected"] >= 1 for case in figures.values()), \
        [name for name, case in figures.items() if not case["faults_injected"]]
    oversize = summary["oversize_bodies"]
    assert oversize["client_hung_up"] >= 1
    # The largest cap is a JSON page's (8 MiB): no body was read further than a cap and one chunk.
    assert oversize["most_bytes_the_client_read_of_one_body"] <= MAX_PAGE_BYTES + READ_CHUNK, oversize
    (artifacts_dir / "faults.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
