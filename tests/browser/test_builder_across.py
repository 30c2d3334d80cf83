"""The builder with JavaScript: an image of another registry picked in the palette, pushed into the target."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from registry.images import image_push
from registry.platform import Platform

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_image_of_another_registry_is_added_from_the_palette_and_streamed_at_the_push(
        page: Page, login, live_server, demo_registry, demo_registry_server, fresh_registry, celery_worker,
        wait_job, skopeo):
    from manifests.jobs import job_create, job_run
    from manifests.models import Job, Registry

    lab = fresh_registry("basic")
    with lab.client() as client:
        # Content of its own: the shared demo registry may hold the default arm64 layer from another test,
        # and then only the config would need streaming.
        image_push(client, repository="lab/arm", tag="5.0", platform=Platform("linux", "arm64", "v8"),
                   content="the lab's arm64 build, streamed across")
    username, password = lab.credentials()
    row = Registry(name="lab", url=lab.url, insecure=True, auth=Registry.AUTH_BASIC, username=username)
    row.set_secret(password)
    row.save()
    job_run(inline=True, job_id=job_create(kind="scan", registry=row, target="lab", params={}).pk)

    login(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/build/?registry=demo")
    page.get_by_label("Target (repository:tag)").fill("username/test:across")
    page.get_by_role("button", name="Add username/x8664-test:latest").click()
    page.get_by_label("Images from").select_option("lab")
    page.get_by_role("button", name="Add lab: lab/arm:5.0").click()
    entries = page.locator("#entries .entry")
    expect(entries).to_have_count(2)
    expect(entries.nth(1).locator("[name=e_registry]")).to_have_value("lab")
    expect(entries.nth(0).locator("[name=e_registry]")).to_have_value("")
    push = page.locator("#push-button")
    expect(push).to_be_enabled()
    push.click()
    page.wait_for_url(f"{live_server.url}/jobs/**")
    job = wait_job(Job.objects.latest("pk").pk)
    assert job.status == "succeeded", job.error
    assert job.params["sources"][1]["registry"] == "lab"
    assert job.result["transfer"]["blobs_streamed"] == 2
    ref = f"docker://{demo_registry_server.host}/username/test:across"
    listing = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
    assert {m["platform"]["architecture"] for m in listing["manifests"]} == {"amd64", "arm64"}
