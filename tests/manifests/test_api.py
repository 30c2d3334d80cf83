"""The JSON API against a real registry seeded with the demo shapes and scanned in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import StringIO
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from manifests.jobs import job_create, job_run
from manifests.management.commands.seed_demo import seed
from manifests.models import ApiToken, Job, Registry, Repository, Tag
from manifests.scan.repository import repository_scan
from manifests.stack.distribution import RunningRegistry
from registry.images import attested_index_push, image_push, index_push
from registry.platform import Platform

pytestmark = pytest.mark.django_db

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@dataclass
class Demo:
    running: RunningRegistry
    registry: Registry
    job: Job


def _scan(registry: Registry) -> Job:
    job = job_create(kind="scan", registry=registry, target=registry.name, params={})
    job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return job


@pytest.fixture
def demo(fresh_registry) -> Demo:
    running = fresh_registry("anonymous")
    with running.client() as client:
        seed(client)
    registry = Registry.objects.create(name="demo", url=running.url, insecure=True)
    return Demo(running, registry, _scan(registry))


@pytest.fixture
def reader(django_user_model):
    return django_user_model.objects.create_user("reader")  # no password: no slow hashing


@pytest.fixture
def api(client, reader):
    """A client logged in by session."""
    client.force_login(reader)
    return client


def _tag_url(repository: str, tag: str, registry: str = "demo") -> str:
    return f"/api/v1/registries/{registry}/repositories/{repository}/tags/{tag}"


# -- repositories ----------------------------------------------------------------


def test_the_repository_list_gives_each_repository_its_tag_count_and_platforms(demo, api):
    response = api.get("/api/v1/registries/demo/repositories")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    by_name = {row["name"]: row for row in body["repositories"]}
    assert sorted(by_name) == ["demo/cli", "demo/legacy", "demo/tools", "demo/webapp", "demo/windows-app",
                               "username/arm64v8-test", "username/x8664-test"]
    assert by_name["demo/webapp"] == {"name": "demo/webapp", "tags": 3, "error": "",
                                      "platforms": ["linux/amd64", "linux/arm64", "linux/arm/v7"]}
    assert by_name["demo/cli"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert by_name["demo/windows-app"]["tags"] == 3
    assert body["next"] is None


def test_q_filters_repositories_by_a_substring_of_their_name(demo, api):
    body = api.get("/api/v1/registries/demo/repositories", {"q": "test"}).json()
    assert [row["name"] for row in body["repositories"]] == ["username/arm64v8-test", "username/x8664-test"]
    assert api.get("/api/v1/registries/demo/repositories", {"q": "nothing-like-this"}).json() == {
        "repositories": [], "next": None}


def test_the_repository_list_pages_by_100_in_a_constant_number_of_queries(demo, api,
                                                                         django_assert_max_num_queries):
    with demo.running.client() as client:
        for number in range(100):
            image_push(client, repository=f"many/r{number:03d}", tag="v1", platform=AMD64, content="shared")
    _scan(demo.registry)

    with django_assert_max_num_queries(4):  # session, user, registry, one page of repositories
        first = api.get("/api/v1/registries/demo/repositories")
    body = first.json()
    assert len(body["repositories"]) == 100
    assert body["repositories"][0]["name"] == "demo/cli"
    assert body["next"] == "http://testserver/api/v1/registries/demo/repositories?page=2"

    second = api.get(body["next"]).json()
    names = [row["name"] for row in second["repositories"]]
    assert len(names) == 7 and names[-1] == "username/x8664-test"
    assert second["next"] is None
    assert {row["name"] for row in body["repositories"]}.isdisjoint(names)

    filtered = api.get("/api/v1/registries/demo/repositories", {"q": "many/", "page": "1"}).json()
    assert len(filtered["repositories"]) == 100 and filtered["next"] is None
    assert filtered["repositories"][0] == {"name": "many/r000", "tags": 1, "platforms": ["linux/amd64"], "error": ""}


def test_a_page_that_is_not_a_positive_number_is_a_400(demo, api):
    response = api.get("/api/v1/registries/demo/repositories", {"page": "0"})
    assert response.status_code == 400
    assert response.json()["field"] == "page"


# -- tags --------------------------------------------------------------------------


def test_an_index_tag_lists_its_platforms_as_stored_and_its_attestations(demo, api):
    with demo.running.client() as client:
        index = client.get_manifest("demo/webapp", "1.4")
        images = [child for child in index.children if not child.is_attestation]
        arm64_blobs = sum(blob.size for blob in client.get_manifest("demo/webapp", images[1].digest).blobs)

    body = api.get(_tag_url("demo/webapp", "1.4")).json()
    assert body["repository"] == "demo/webapp" and body["tag"] == "1.4"
    assert body["digest"] == index.digest
    assert body["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert body["kind"] == "index"
    assert [p["platform"] for p in body["platforms"]] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    arm64 = body["platforms"][1]
    assert arm64 == {"platform": "linux/arm64", "os": "linux", "architecture": "arm64", "variant": "v8",
                     "os_version": "", "os_features": [], "digest": images[1].digest,
                     "media_type": "application/vnd.oci.image.manifest.v1+json", "size": images[1].size,
                     "download_size": arm64_blobs, "uncompressed_size": None}
    assert body["platforms"][2]["variant"] == "v7"
    assert [a["subject"] for a in body["attestations"]] == [image.digest for image in images]
    assert len({a["digest"] for a in body["attestations"]} | {image.digest for image in images}) == 6
    assert body["missing"] == [] and body["error"] == ""
    assert body["scanned_at"] is not None


def test_windows_entries_keep_their_os_version(demo, api):
    body = api.get(_tag_url("demo/windows-app", "latest")).json()
    assert body["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [(p["platform"], p["os_version"]) for p in body["platforms"]] == [
        ("windows/amd64", "10.0.20348.2227"), ("windows/amd64", "10.0.17763.5329")]
    assert body["attestations"] == []


def test_a_single_image_tag_answers_one_platform_from_its_own_manifest(demo, api):
    with demo.running.client() as client:
        manifest = client.get_manifest("username/arm64v8-test", "latest")
    body = api.get(_tag_url("username/arm64v8-test", "latest")).json()
    assert body["kind"] == "image"
    assert body["digest"] == manifest.digest
    assert body["platforms"] == [{
        "platform": "linux/arm64", "os": "linux", "architecture": "arm64", "variant": "v8", "os_version": "",
        "os_features": [], "digest": manifest.digest,
        "media_type": "application/vnd.docker.distribution.manifest.v2+json", "size": len(manifest.raw),
        "download_size": sum(blob.size for blob in manifest.blobs), "uncompressed_size": None}]
    assert body["attestations"] == []


def test_a_nested_index_contributes_its_childrens_platforms_and_attestations(fresh_registry, api):
    running = fresh_registry("anonymous")
    with running.client() as client:
        inner, images, attestations = attested_index_push(client, repository="nest/ed", tag="inner",
                                                          platforms=[AMD64, ARM64])
        win = image_push(client, repository="nest/ed", tag=None,
                         platform=Platform("windows", "amd64", os_version="10.0.20348.1"))
        index_push(client, repository="nest/ed", tag="outer", children=[inner.descriptor(), win.descriptor()])
    registry = Registry.objects.create(name="nest", url=running.url, insecure=True)
    _scan(registry)

    body = api.get(_tag_url("nest/ed", "outer", registry="nest")).json()
    assert [(p["platform"], p["digest"]) for p in body["platforms"]] == [
        ("linux/amd64", images[0].digest), ("linux/arm64", images[1].digest), ("windows/amd64", win.digest)]
    assert body["attestations"] == [{"digest": a.digest, "subject": i.digest}
                                    for a, i in zip(attestations, images, strict=True)]


def test_a_repository_name_with_a_tags_segment_still_routes_to_its_tag(fresh_registry, api):
    running = fresh_registry("anonymous")
    with running.client() as client:
        pushed = image_push(client, repository="team/tags/tool", tag="v1", platform=AMD64)
    registry = Registry.objects.create(name="odd", url=running.url, insecure=True)
    _scan(registry)
    body = api.get(_tag_url("team/tags/tool", "v1", registry="odd")).json()
    assert body["repository"] == "team/tags/tool" and body["digest"] == pushed.digest


def test_a_missing_child_is_listed_and_the_other_platforms_still_show(fresh_registry, api):
    running = fresh_registry("anonymous")
    with running.client() as client:
        _, images, _ = attested_index_push(client, repository="gone/child", tag="v1", platforms=[AMD64, ARM64])
        client.request("DELETE", f"/v2/gone/child/manifests/{images[1].digest}", op="DELETE manifest",
                       ok=(202,))
    registry = Registry.objects.create(name="gone", url=running.url, insecure=True)
    _scan(registry)
    body = api.get(_tag_url("gone/child", "v1", registry="gone")).json()
    assert body["missing"] == [images[1].digest]
    assert [p["platform"] for p in body["platforms"]] == ["linux/amd64", "linux/arm64"]


def test_a_tag_never_scanned_successfully_answers_its_error_and_empty_lists(demo, api):
    # A row the registry once listed (a scan records a tag it is asked for by
    # name only when the registry confirms it, or when it is stored already).
    Tag.objects.create(repository=Repository.objects.get(registry=demo.registry, name="demo/webapp"),
                       name="vanished")
    with demo.running.client() as client:
        repository_scan(client=client, registry=demo.registry, name="demo/webapp", only_tags=["vanished"])
    response = api.get(_tag_url("demo/webapp", "vanished"))
    assert response.status_code == 200
    body = response.json()
    assert body["digest"] == "" and body["kind"] == ""
    assert "MANIFEST_UNKNOWN" in body["error"]
    assert body["platforms"] == [] and body["attestations"] == [] and body["missing"] == []


# -- coverage ------------------------------------------------------------------------


def test_coverage_lists_what_each_repository_misses(demo, api):
    body = api.get("/api/v1/coverage", {"registry": "demo", "require": "linux/amd64,linux/arm64"}).json()
    assert body["required"] == ["linux/amd64", "linux/arm64"]
    rows = {row["repository"]: row for row in body["rows"]}
    assert len(rows) == 7
    assert rows["demo/legacy"]["tag"] == "latest" and rows["demo/legacy"]["missing"] == ["linux/arm64"]
    assert rows["demo/legacy"]["platforms"] == ["linux/amd64", "linux/386"]
    assert rows["demo/cli"]["tag"] == "latest" and rows["demo/cli"]["missing"] == ["linux/arm64"]
    assert rows["demo/webapp"]["missing"] == []
    assert rows["demo/windows-app"]["missing"] == ["linux/amd64", "linux/arm64"]
    with demo.running.client() as client:
        assert rows["demo/legacy"]["digest"] == client.head_manifest("demo/legacy", "latest").digest


def test_coverage_lacking_keeps_only_repositories_without_that_platform(demo, api):
    body = api.get("/api/v1/coverage", {"registry": "demo", "require": "linux/amd64,linux/arm64",
                                        "lacking": "linux/aarch64"}).json()
    assert [row["repository"] for row in body["rows"]] == [
        "demo/cli", "demo/legacy", "demo/windows-app", "username/x8664-test"]


def test_coverage_tag_pattern_chooses_the_matching_tag(demo, api):
    body = api.get("/api/v1/coverage", {"registry": "demo", "require": "linux/arm64", "tag": "ltsc*"}).json()
    assert [(row["repository"], row["tag"], row["missing"]) for row in body["rows"]] == [
        ("demo/windows-app", "ltsc2022", ["linux/arm64"])]


def test_coverage_without_require_uses_the_registrys_own_set(demo, api):
    demo.registry.required_platforms = "linux/arm/v7"
    demo.registry.save()
    body = api.get("/api/v1/coverage", {"registry": "demo"}).json()
    assert body["required"] == ["linux/arm/v7"]
    assert {row["repository"] for row in body["rows"] if not row["missing"]} == {"demo/webapp", "demo/tools"}


def test_coverage_answers_400_naming_the_bad_parameter(demo, api):
    cases = [
        ({"registry": "demo", "require": "linux/amd64,linux"}, "require"),
        ({"registry": "demo", "require": "linux/amd64", "lacking": "linux/arm 64"}, "lacking"),
        ({"require": "linux/amd64"}, "registry"),
    ]
    for params, field in cases:
        response = api.get("/api/v1/coverage", params)
        assert response.status_code == 400, params
        body = response.json()
        assert body["field"] == field and body["error"], params


def test_coverage_of_an_unknown_registry_is_a_404(demo, api):
    response = api.get("/api/v1/coverage", {"registry": "elsewhere"})
    assert response.status_code == 404
    assert "elsewhere" in response.json()["error"]


# -- jobs --------------------------------------------------------------------------------


def test_a_job_answers_its_status_steps_and_result(demo, api):
    body = api.get(f"/api/v1/jobs/{demo.job.pk}").json()
    assert body["id"] == demo.job.pk
    assert body["kind"] == "scan" and body["status"] == "succeeded" and body["target"] == "demo"
    assert body["error"] == "" and body["digest"] == ""
    assert body["result"]["repositories"] == 7 and body["result"]["tags"] == 12
    assert {step["name"] for step in body["steps"]} >= {"demo/webapp", "demo/windows-app"}
    assert body["created_at"] and body["finished_at"]


# -- errors, methods and authentication ---------------------------------------------------


def test_unknown_names_answer_a_json_404(demo, api):
    paths = [
        "/api/v1/registries/elsewhere/repositories",
        _tag_url("demo/webapp", "1.4", registry="elsewhere"),
        _tag_url("demo/nothing", "1.4"),
        _tag_url("demo/webapp", "0.0"),
        "/api/v1/jobs/999999",
        "/api/v1/registries/demo/repositories/",
        "/api/v1/no-such-endpoint",
    ]
    for path in paths:
        response = api.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json", path
        assert response.json()["error"], path


def test_an_untrusted_name_comes_back_as_json_the_browser_will_not_sniff(api):
    name = '<img src=x onerror="alert(1)">\\'
    response = api.get(f"/api/v1/registries/{quote(name)}/repositories")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json()["error"] == f"no registry named {name}"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_only_get_is_allowed(api, method):
    response = getattr(api, method)("/api/v1/registries/demo/repositories")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"]


def test_a_post_without_csrf_token_still_gets_a_json_405(reader):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(reader)
    response = client.post("/api/v1/coverage", {"registry": "demo"})
    assert response.status_code == 405 and response.json()["error"]


@pytest.mark.parametrize("path", [
    "/api/v1/registries/demo/repositories",
    _tag_url("demo/webapp", "1.4"),
    "/api/v1/coverage?registry=demo",
    "/api/v1/jobs/1",
    "/api/v1/no-such-endpoint",
])
def test_an_anonymous_request_gets_a_json_401(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "authentication" in response.json()["error"]


def test_a_token_authenticates_and_records_its_use(demo, client, reader):
    token, key = ApiToken.issue(reader)
    before = timezone.now()
    response = client.get(_tag_url("demo/webapp", "latest"), headers={"Authorization": f"Token {key}"})
    assert response.status_code == 200
    assert [p["platform"] for p in response.json()["platforms"]] == ["linux/amd64", "linux/arm64",
                                                                      "linux/arm/v7"]
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before


@pytest.mark.parametrize("header", ["Token mdb_not-a-key", "Bearer {key}", "Token", "{key}"])
def test_a_wrong_token_gets_a_401(client, reader, header):
    _, key = ApiToken.issue(reader)
    response = client.get("/api/v1/registries/demo/repositories",
                          headers={"Authorization": header.format(key=key)})
    assert response.status_code == 401
    assert response.json()["error"]


def test_a_revoked_token_gets_a_401(client, reader):
    token, key = ApiToken.issue(reader)
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = client.get("/api/v1/registries/demo/repositories", headers={"Authorization": f"Token {key}"})
    assert response.status_code == 401


def test_a_bad_token_is_refused_even_with_a_session(api):
    response = api.get("/api/v1/registries/demo/repositories", headers={"Authorization": "Token mdb_wrong"})
    assert response.status_code == 401


def test_a_token_of_an_inactive_user_gets_a_401(client, reader):
    _, key = ApiToken.issue(reader)
    reader.is_active = False
    reader.save()
    response = client.get("/api/v1/registries/demo/repositories", headers={"Authorization": f"Token {key}"})
    assert response.status_code == 401


# -- the apitoken command ---------------------------------------------------------------


def test_apitoken_prints_a_key_once_that_the_api_accepts_until_revoked(demo, client, reader):
    out, err = StringIO(), StringIO()
    call_command("apitoken", "reader", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key.startswith("mdb_") and "\n" not in key
    token = ApiToken.objects.get(user=reader)
    assert token.key_hash == ApiToken.hash_key(key) and key not in json.dumps(
        list(ApiToken.objects.values("prefix", "key_hash")))
    assert token.prefix in err.getvalue()

    headers = {"Authorization": f"Token {key}"}
    body = client.get("/api/v1/coverage", {"registry": "demo", "lacking": "linux/arm64"}, headers=headers).json()
    assert "demo/legacy" in [row["repository"] for row in body["rows"]]

    out = StringIO()
    call_command("apitoken", "reader", "--revoke", token.prefix, stdout=out)
    assert token.prefix in out.getvalue()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get("/api/v1/coverage", {"registry": "demo"}, headers=headers).status_code == 401


def test_apitoken_refuses_an_unknown_user_or_prefix(reader):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("apitoken", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="no active token"):
        call_command("apitoken", "reader", "--revoke", "mdb_00000000", stdout=StringIO())
    assert not ApiToken.objects.exists()
