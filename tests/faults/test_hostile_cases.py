"""Hostile registries, one fault each: every fault is a per-item error, the rest is scanned.

The registry is tests/faults/hostile/ (a real Docker Distribution cannot be made to
misbehave on cue); fixtures in tests/faults/conftest.py, checks in tests/faults/hostile_checks.py.
"""

from __future__ import annotations

import json
import time

import pytest

from manifests.jobs import job_create, job_run
from manifests.models import Job, Repository
from registry import client as client_module
from registry.client import MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES
from tests.faults import hostile_checks as checks
from tests.faults.hostile.content import BAD_NAMES, BAD_TAGS, SCRIPT, UNKNOWN_TYPE
from tests.faults.hostile.server import HostileRegistry

# -- one case each ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_manifest_whose_bytes_do_not_match_its_digest_is_a_per_tag_error_and_the_rest_is_scanned(
        hostile, rest_checked):
    registry = checks.registry_add(hostile)
    counts = checks.scan(registry, "bad/digest")
    assert counts["errors"] == 2
    lying = checks.tag_error(registry, "bad/digest", "lying")
    assert lying.startswith("DIGEST_MISMATCH: ") and "has bytes whose digest is" in lying
    assert checks.tag_error(registry, "bad/digest", "child-lies").startswith("DIGEST_MISMATCH: ")
    assert checks.tag_row(registry, "bad/digest", "lying").digest == ""  # nothing of the lie was stored
    assert hostile.faults["digest header does not match the bytes"] == 1
    assert hostile.faults["bytes fetched by digest are other bytes"] == 1
    # A re-scan asks again (nothing of a failed tag was kept as "known") and the errors stay.
    checks.scan(registry, "bad/digest")
    assert hostile.faults["bytes fetched by digest are other bytes"] == 2
    assert checks.tag_error(registry, "bad/digest", "child-lies").startswith("DIGEST_MISMATCH: ")
    assert checks.tag_error(registry, "bad/digest", "lying").startswith("DIGEST_MISMATCH: ")
    rest_checked(registry, "bad/digest")


@pytest.mark.django_db
def test_a_media_type_that_disagrees_with_content_type_is_a_per_tag_error(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "bad/mediatype")
    error = checks.tag_error(registry, "bad/mediatype", "mismatch")
    assert error.startswith("MEDIA_TYPE_MISMATCH: ")
    assert "application/vnd.docker.distribution.manifest.v2+json" in error
    assert "application/vnd.oci.image.index.v1+json" in error
    rest_checked(registry, "bad/mediatype")


@pytest.mark.django_db
def test_malformed_json_cut_short_or_nested_too_deep_is_a_per_tag_error(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "bad/json")
    assert checks.tag_error(registry, "bad/json", "broken").startswith("MANIFEST_INVALID: manifest is not valid JSON")
    assert checks.tag_error(registry, "bad/json", "nested") == "MANIFEST_INVALID: manifest JSON is nested too deeply"
    assert hostile.faults["malformed JSON"] == 2
    rest_checked(registry, "bad/json")


@pytest.mark.django_db
def test_a_manifest_over_4_mib_is_refused_without_reading_it_all(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    _, client = checks.scan_client(registry, "bad/huge")
    declared = checks.tag_error(registry, "bad/huge", "declared")
    assert declared == f"TOO_LARGE: manifest is {5 * 1024 * 1024} bytes, over the {MAX_MANIFEST_BYTES} byte limit"
    assert checks.tag_error(registry, "bad/huge", "chunked") == f"TOO_LARGE: manifest is over the {MAX_MANIFEST_BYTES} byte limit"
    # Declared too big: refused on the headers, nothing of the body read. No length: read up to the
    # cap (and one chunk), then hung up, far short of the endless body.
    assert checks.read_at_most(client, "GET manifest", MAX_MANIFEST_BYTES) > MAX_MANIFEST_BYTES
    endless = [record for record in hostile.streams if record.declared is None]
    assert len(endless) == 1 and checks.hung_up(endless[0]).hung_up, hostile.streams
    rest_checked(registry, "bad/huge", client=client)


@pytest.mark.django_db
def test_a_config_over_its_cap_is_refused_without_reading_it_all(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    _, client = checks.scan_client(registry, "bad/config")
    assert checks.tag_error(registry, "bad/config", "big") == \
        f"TOO_LARGE: blob is {9 * 1024 * 1024} bytes, over the {MAX_CONFIG_BYTES} byte limit"
    assert checks.tag_error(registry, "bad/config", "big-chunked") == f"TOO_LARGE: blob is over the {MAX_CONFIG_BYTES} byte limit"
    assert checks.read_at_most(client, "GET blob", MAX_CONFIG_BYTES) > MAX_CONFIG_BYTES
    endless = [record for record in hostile.streams if "/blobs/" in record.path and record.declared is None]
    assert len(endless) == 1 and checks.hung_up(endless[0]).hung_up, hostile.streams
    rest_checked(registry, "bad/config", client=client)


@pytest.mark.django_db
def test_a_config_that_is_not_json_is_a_per_tag_error(hostile, rest_checked):
    # Impossible creation dates are pushed to a real registry: tests/faults/test_real_registry_content.py.
    registry = checks.registry_add(hostile)
    checks.scan(registry, "bad/config")
    error = checks.tag_error(registry, "bad/config", "not-json")
    assert error.startswith("CONTENT_INVALID: blob sha256:") and error.endswith(" is not JSON")
    rest_checked(registry, "bad/config")


@pytest.mark.django_db
def test_fields_longer_than_any_real_one_are_a_per_tag_error_and_never_reach_the_database(hostile, rest_checked):
    # PostgreSQL refuses a value longer than its column, and would fail the whole repository's transaction.
    registry = checks.registry_add(hostile)
    checks.scan(registry, "bad/fields")
    assert checks.tag_error(registry, "bad/fields", "long-platform") == \
        "MANIFEST_INVALID: manifests[0] has a platform architecture longer than 64 characters"
    assert checks.tag_error(registry, "bad/fields", "long-type") == \
        "MANIFEST_INVALID: manifests[0] has a mediaType longer than 255 characters"
    # sha512 has 128 hex digits exactly: a longer one is refused by the digest grammar itself.
    assert checks.tag_error(registry, "bad/fields", "long-digest") == "MANIFEST_INVALID: manifests[0] has an invalid digest"
    # Over-long config fields are pushed to a real registry: tests/faults/test_real_registry_content.py.
    rest_checked(registry, "bad/fields")


@pytest.mark.django_db
def test_an_unknown_media_type_is_a_per_tag_error_naming_the_type(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "bad/unknown-type")
    assert checks.tag_error(registry, "bad/unknown-type", "thing") == \
        f"MANIFEST_INVALID: unsupported manifest media type '{UNKNOWN_TYPE}'"
    rest_checked(registry, "bad/unknown-type")


@pytest.mark.django_db
def test_a_registry_that_hangs_times_out_within_a_bound_and_the_rest_is_scanned(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    timeout, retries = 1.0, 2
    started = time.monotonic()
    checks.scan(registry, "slow/hang", timeout=timeout, max_retries=retries)
    elapsed = time.monotonic() - started
    assert checks.tag_error(registry, "slow/hang", "stuck") == "TIMEOUT: the registry did not answer within 1 s"
    assert hostile.count("GET", "/v2/slow/hang/manifests/stuck") == 1 + retries
    # Each try waits the timeout (1 s), with 0.25 s and 0.5 s of backoff between:
    # about 3.75 s, where waiting out the hangs would take 3 x 5 s. The margin is
    # for a loaded machine (the scan also lists and fetches the good tags).
    assert elapsed < 10, elapsed
    rest_checked(registry, "slow/hang")


@pytest.mark.django_db
def test_connection_resets_are_retried_and_one_that_never_stops_is_a_per_tag_error(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "flaky/reset")
    assert hostile.count("GET", "/v2/flaky/reset/manifests/twice") == 3  # two resets, then the answer
    error = checks.tag_error(registry, "flaky/reset", "always")
    assert error.startswith("CONNECTION_FAILED: ") and hostile.url.removeprefix("http://") in error
    assert hostile.count("GET", "/v2/flaky/reset/manifests/always") == 4  # the first try and 3 retries
    rest_checked(registry, "flaky/reset")


@pytest.mark.django_db
def test_5xx_answers_are_retried_with_backoff_and_a_lasting_one_shows_the_registrys_message(hostile, viewer,
                                                                                            figures, request):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "flaky/5xx")
    assert hostile.count("GET", "/v2/flaky/5xx/manifests/twice") == 3
    assert checks.tag_error(registry, "flaky/5xx", "always") == f"storage backend on fire {SCRIPT}"
    assert hostile.count("GET", "/v2/flaky/5xx/manifests/always") == 4
    answers = checks.pages_answer(viewer, registry)
    assert "storage backend on fire &lt;script&gt;" in answers["/registries/hostile/r/flaky/5xx/t/always"]
    api = json.loads(answers["/api/v1/registries/hostile/repositories/flaky/5xx/tags/always"])
    assert api["error"] == f"storage backend on fire {SCRIPT}"  # the registry's words, verbatim, in JSON
    checks.check_good(figures, request, hostile, registry, "flaky/5xx")


@pytest.mark.django_db
def test_429_with_retry_after_is_waited_out_and_one_asking_too_long_shows_the_registrys_message(hostile, rest_checked):
    registry = checks.registry_add(hostile)
    started = time.monotonic()
    checks.scan(registry, "limited/app")
    assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
    assert hostile.count("GET", "/v2/limited/app/manifests/v1") == 3
    assert checks.tag_error(registry, "limited/app", "forever") == \
        "TOOMANYREQUESTS: pull rate limit exceeded: come back in an hour"
    assert hostile.count("GET", "/v2/limited/app/manifests/forever") == 1  # an hour is over max_retry_wait
    rest_checked(registry, "limited/app")


@pytest.mark.django_db
def test_a_tag_list_whose_link_loops_is_a_per_repository_error_within_two_pages(hostile, viewer, figures, request):
    registry = checks.registry_add(hostile)
    for repository in ("loop/tags", "loop/pages"):
        counts = checks.scan(registry, repository)
        row = Repository.objects.get(registry=registry, name=repository)
        assert row.error.startswith("PAGINATION_LOOP: "), row.error
        assert counts == {"tags": 0, "errors": 1, "note": row.error}
        assert not row.tags.exists()
    # The same URL again is seen before it is asked; a new URL repeating the page is seen on its answer.
    assert hostile.count("GET", "/v2/loop/tags/tags/list") == 1
    assert hostile.count("GET", "/v2/loop/pages/tags/list") == 2
    checks.scan(registry, "good/app")  # the rest of the registry is unaffected
    answers = checks.pages_answer(viewer, registry)
    assert "PAGINATION_LOOP" in answers["/registries/hostile/"]
    checks.check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_a_tag_list_that_never_ends_stops_at_the_clients_page_cap(hostile, monkeypatch, rest_checked):
    # Ten new names a page, forever: no loop to detect, only the page cap bounds it. The real cap
    # (10,000 pages) would take minutes here; the mechanism is the same at 20.
    monkeypatch.setattr(client_module, "MAX_PAGES", 20)
    registry = checks.registry_add(hostile)
    counts = checks.scan(registry, "loop/endless")
    assert counts == {"tags": 0, "errors": 1, "note": "PAGINATION_LOOP: more than 20 pages"}
    assert Repository.objects.get(registry=registry, name="loop/endless").error == counts["note"]
    assert hostile.count("GET", "/v2/loop/endless/tags/list") == 20
    checks.scan(registry, "good/app")
    rest_checked(registry, "good/app")


@pytest.mark.django_db
def test_repository_names_that_break_the_grammar_are_skipped_with_an_error_and_never_requested(viewer, figures,
                                                                                                request):
    with HostileRegistry(catalog=["good/app", *BAD_NAMES]) as hostile:
        registry = checks.registry_add(hostile)
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
    answers = checks.pages_answer(viewer, registry, extra=(f"/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}"))
    assert "UPPER/Case" in answers["/"] and "html/&lt;script&gt;" in answers[f"/jobs/{job.pk}/"]
    checks.check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_html_in_tag_names_and_error_messages_is_escaped_and_kept_verbatim_in_the_api(
        hostile, viewer, figures, request):
    registry = checks.registry_add(hostile)
    checks.scan(registry, "html/app")
    repository = Repository.objects.get(registry=registry, name="html/app")
    # Tag names that break the grammar are not stored (no page could link to them) but are named.
    assert sorted(repository.tags.values_list("name", flat=True)) == ["err", "ok"]
    assert repository.error.startswith(f"skipped {len(BAD_TAGS)} tag names that break the grammar: ")
    assert SCRIPT in repository.error
    assert checks.tag_error(registry, "html/app", "err") == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    # Script in annotations is pushed to a real registry: tests/faults/test_real_registry_content.py.
    answers = checks.pages_answer(viewer, registry)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answers["/registries/hostile/r/html/app/t/err"]
    assert "&lt;script&gt;" in answers["/registries/hostile/"]  # the skipped tag names, escaped
    api = json.loads(answers["/api/v1/registries/hostile/repositories/html/app/tags/err"])
    assert api["error"] == f"MANIFEST_INVALID: {SCRIPT} is not allowed here"
    checks.check_good(figures, request, hostile, registry, "html/app")
