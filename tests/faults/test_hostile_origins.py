"""Hostile registries pointing credentials at another origin: none reaches it.

The registry is tests/faults/hostile/ (a real Docker Distribution cannot be made to
misbehave on cue); fixtures in tests/faults/conftest.py, checks in tests/faults/hostile_checks.py.
"""

from __future__ import annotations

import hashlib
import io
from urllib.parse import quote

import pytest
from django.core.management import call_command

from manifests.jobs import job_create, job_run
from manifests.models import Job, Registry, Repository
from manifests.services.registries import registry_client
from registry import RegistryClient, errors
from tests.faults import hostile_checks as checks
from tests.faults.hostile.content import PASSWORD, USER
from tests.faults.hostile.server import HostileRegistry
from tests.harness.tls import certificate_authority

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
    registry = checks.registry_add(hostile, auth=Registry.AUTH_BASIC)
    counts = checks.scan(registry, "cross/link")
    row = Repository.objects.get(registry=registry, name="cross/link")
    assert row.error == (f"PAGINATION_CROSS_ORIGIN: the next page of /v2/cross/link/tags/list is on "
                         f"{hostile.other_url}, not on the registry's own origin {hostile.url}: not followed")
    assert counts["errors"] == 1 and not row.tags.exists()
    checks.credentials_were_sent_to_the_registry(hostile, "/v2/cross/link/tags/list")
    assert checks.no_credentials_reached_the_other_origin(hostile) == []  # not even asked
    checks.scan(registry, "good/app")
    checks.pages_answer(viewer, registry)
    checks.check_good(figures, request, hostile, registry, "good/app")


@pytest.mark.django_db
def test_case_cross_origin_catalog_link_fails_the_listing_and_the_other_origin_gets_nothing(
        basic_hostile, figures, request):
    hostile = basic_hostile
    hostile.link_catalog_to_other()
    registry = checks.registry_add(hostile, auth=Registry.AUTH_BASIC)
    job = job_create(kind=Job.KIND_SCAN, registry=registry, target=registry.name, params={})
    job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.STATUS_FAILED
    assert job.error.startswith("cannot list repositories: PAGINATION_CROSS_ORIGIN: the next page of /v2/_catalog "
                                f"is on {hostile.other_url}"), job.error
    checks.credentials_were_sent_to_the_registry(hostile, "/v2/_catalog")
    assert checks.no_credentials_reached_the_other_origin(hostile) == []
    checks.record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_case_cross_origin_upload_location_is_followed_without_authorization(basic_hostile, figures, request):
    hostile = basic_hostile
    registry = checks.registry_add(hostile, auth=Registry.AUTH_BASIC)
    data = b"a blob to upload\n"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with registry_client(registry=registry) as client:
        client.upload_blob("cross/upload", digest, data)
    checks.credentials_were_sent_to_the_registry(hostile, "/v2/cross/upload/blobs/uploads/")
    [put] = checks.no_credentials_reached_the_other_origin(hostile)
    assert (put.method, put.path) == ("PUT", "/upload/cross")
    assert put.query == f"state=1&digest={quote(digest)}"  # the Location kept as given, digest= appended
    checks.record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_case_cross_origin_blob_redirect_is_followed_without_authorization(basic_hostile, viewer, figures, request):
    hostile = basic_hostile
    registry = checks.registry_add(hostile, auth=Registry.AUTH_BASIC)
    checks.scan(registry, "cross/redirect")
    assert hostile.faults["blob redirect to another origin"] == 1  # the config (a scan reads no layer)
    checks.credentials_were_sent_to_the_registry(hostile, "/v2/cross/redirect/blobs/")
    cdn = checks.no_credentials_reached_the_other_origin(hostile)
    assert cdn and all(seen.path.startswith("/cdn/sha256:") for seen in cdn)
    checks.pages_answer(viewer, registry)
    checks.check_good(figures, request, hostile, registry, "cross/redirect")


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
        checks.record(figures, request, hostile, checked=[], lost=[])


def _check(registry: Registry) -> Job:
    job = job_create(kind=Job.KIND_CHECK, registry=registry, target=registry.name, params={})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    registry.refresh_from_db()
    return job


@pytest.mark.django_db
def test_case_realm_change_fails_the_job_naming_both_origins_and_the_new_realm_gets_nothing(figures, request):
    with HostileRegistry(auth="bearer") as hostile:
        registry = checks.registry_add(hostile, auth=Registry.AUTH_TOKEN)
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
        checks.record(figures, request, hostile, checked=[], lost=[])


@pytest.mark.django_db
def test_a_token_realm_on_another_origin_is_recorded_at_the_first_check_and_trusted_after(figures, request):
    # Docker Hub's realm (auth.docker.io) is not its registry's host: that is fine, once recorded.
    with HostileRegistry(auth="bearer") as hostile:
        hostile.realm = f"{hostile.other_url}/token"
        registry = checks.registry_add(hostile, auth=Registry.AUTH_TOKEN)
        assert _check(registry).status == Job.STATUS_SUCCEEDED
        assert registry.token_realm_origin == hostile.other_url
        tokens = hostile.seen_by("other")
        assert tokens and all(s.path == "/token" for s in tokens)  # the realm gets the password, nothing else
        assert _check(registry).status == Job.STATUS_SUCCEEDED
        # The bearer token itself goes to the registry only.
        assert all(not s.authorization.startswith("Bearer") for s in hostile.seen_by("other"))
