"""A list built from the images of two registries: the builder's pages and POST /api/v1/lists.

The other registry's entry is planned from its own inventory and streamed into
the target at the push (a blob cannot be mounted across registries), by the
same code a rule's cross-registry source uses.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from django.contrib.auth.models import Permission, User

from manifests.models import ApiToken, Job, PushRecord
from registry.images import image_push
from registry.platform import Platform
from tests.manifests.across import registry_scanned

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@pytest.fixture
def two(fresh_registry):
    """An anonymous registry with the amd64 image, a Basic one (`lab`) with the arm64 image."""
    main, lab = fresh_registry("anonymous"), fresh_registry("basic")
    with main.client() as client:
        image_push(client, repository="username/x8664-test", tag="5.0", platform=AMD64)
    with lab.client() as client:
        image_push(client, repository="username/arm64v8-test", tag="5.0", platform=ARM64)
    return main, lab, registry_scanned(main, "main"), registry_scanned(lab, "lab")


def _both_platforms_pull(skopeo, running, reference: str, tmp_path) -> None:
    ref = f"docker://{running.host}/{reference}"
    listing = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
    assert {m["platform"]["architecture"] for m in listing["manifests"]} == {"amd64", "arm64"}
    for arch, variant in (("amd64", ""), ("arm64", "v8")):
        skopeo("copy", "--src-tls-verify=false", "--override-os", "linux", "--override-arch", arch,
               *(["--override-variant", variant] if variant else []), ref, f"dir:{tmp_path / arch}")


def _entry_fields(page: str) -> dict[str, list[str]]:
    """The list's entries as the page's form holds them (the hidden template's blank entry left out)."""
    form = page.partition('<template id="entry-template">')[0]
    return {name: [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]*)"', form)]
            for name in ("e_key", "e_ref", "e_select", "e_label", "e_registry", "e_os", "e_arch", "e_variant",
                         "e_os_version", "e_os_features")}


def _add_tokens(page: str) -> list[dict]:
    return [json.loads(html.unescape(value)) for value in re.findall(r'name="add" value="([^"]+)"', page)]


@pytest.mark.django_db(transaction=True)
def test_the_builder_makes_a_list_from_the_images_of_two_registries(two, celery_worker, client, skopeo, wait_job,
                                                                    tmp_path):
    main, lab, _, _ = two
    client.force_login(User.objects.create_superuser("builder", password="x"))
    # The palette lists another registry's images; their Add buttons name that registry.
    page = client.get("/build/", {"registry": "main", "source_registry": "lab"}).content.decode()
    assert 'id="b-source"' in page and '<option value="lab" selected>' in page
    (arm,) = _add_tokens(page)
    assert arm["registry"] == "lab" and arm["label"] == "lab: username/arm64v8-test:5.0"
    (amd,) = _add_tokens(client.get("/build/", {"registry": "main"}).content.decode())
    assert "registry" not in amd
    # Add both (the form without JavaScript, each Add posting the whole form), then push what the preview shows.
    form = {"registry": "main", "target": "username/test:5.0", "format": "auto", "expect_digest": ""}
    fields: dict[str, list[str]] = {}
    for token in (amd, arm):
        fields = _entry_fields(client.post("/build/", {**form, **fields, "add": json.dumps(token)}).content.decode())
    assert fields["e_registry"] == ["", "lab"] and fields["e_label"][1] == "lab: username/arm64v8-test:5.0"
    preview = client.post("/build/preview", {**form, **fields}).content.decode()
    assert 'class="field-error"' not in preview, preview
    assert f"{lab.host}/username/arm64v8-test@" in html.unescape(preview)  # the equivalent command names its host
    response = client.post("/build/push", {**form, **fields})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = wait_job(int(response["Location"].rstrip("/").split("/")[-1]))
    assert job.status == "succeeded", job.error
    transfer = job.result["transfer"]
    assert transfer["blobs_streamed"] == 2 and transfer["bytes_moved"] > 0 and transfer["bytes_per_second"] > 0
    assert any(step.get("event") == "upload" and "bytes_per_second" in step for step in job.steps)
    assert PushRecord.objects.get(job=job).verified is True
    page = client.get(response["Location"]).content.decode()
    assert re.search(r'id="transfer-result">Streamed from another registry: [0-9.]+\xa0\w+ \([0-9.]+\xa0\w+/s\), '
                     r"2 blobs streamed", page), page
    _both_platforms_pull(skopeo, main, "username/test:5.0", tmp_path)


@pytest.mark.django_db(transaction=True)
def test_the_api_makes_a_list_from_a_source_in_another_registry(two, celery_worker, client, skopeo, wait_job,
                                                                 tmp_path):
    main, _, _, _ = two
    user = User.objects.create_user("ci")
    user.user_permissions.add(Permission.objects.get(codename="push_registry"))
    _, key = ApiToken.issue(user, scope=ApiToken.SCOPE_PUSH)

    def post(body: dict):
        return client.post("/api/v1/lists", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {key}")

    body = {"registry": "main", "target": "username/test:5.0", "expect_digest": "",
            "sources": [{"reference": "username/x8664-test:5.0"},
                        {"reference": "username/arm64v8-test:5.0", "registry": "lab"}]}
    # Without its registry, the second source is looked for in the target's, and not found there.
    alone = post({**body, "sources": [body["sources"][0], {"reference": "username/arm64v8-test:5.0"}]})
    assert alone.status_code == 400 and "source 2" in alone.json()["fields"]
    unknown = post({**body, "sources": [body["sources"][0], {**body["sources"][1], "registry": "nope"}]})
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {"source 2": ["no registry named 'nope'"]}
    response = post(body)
    assert response.status_code == 202, response.json()
    job = wait_job(response.json()["job"])
    assert job.status == "succeeded", job.error
    assert job.digest == response.json()["digest"] and job.kind == Job.KIND_PUSH
    assert job.result["transfer"]["blobs_streamed"] == 2
    _both_platforms_pull(skopeo, main, "username/test:5.0", tmp_path)
