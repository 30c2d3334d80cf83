"""The canonical scenario, played by a user in a real browser, pushed by the real worker, checked by skopeo."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from manifests.jobs import job_create, job_run
from manifests.models import Registry
from registry.images import image_push
from registry.platform import Platform


@pytest.fixture
def canonical_registry(fresh_registry, live_server, redis_server):
    """Two single-platform images in two repositories; the arm64 one, like many, names no variant."""
    running = fresh_registry("basic")
    with running.client() as client:
        image_push(client, repository="username/x8664-test", tag="latest", platform=Platform("linux", "amd64"))
        image_push(client, repository="username/arm64v8-test", tag="latest", platform=Platform("linux", "arm64"))
    username, password = running.credentials()
    registry = Registry(name="lab", url=running.url, insecure=True, auth=Registry.AUTH_BASIC, username=username)
    registry.set_secret(password)
    registry.save()
    job = job_create(kind="scan", registry=registry, target="lab", params={})
    job_run(inline=True, job_id=job.pk)
    return running, registry


def _entry(page, label: str):
    return page.locator("#entries li.entry", has_text=label)


@pytest.mark.django_db(transaction=True)
def test_a_user_drags_two_images_into_a_new_list_and_pushes_it(
    page, login, live_server, canonical_registry, celery_worker, screenshot, skopeo, tmp_path
):
    running, registry = canonical_registry
    login(page)
    page.goto(f"{live_server.url}/build/?registry={registry.name}")
    page.get_by_label("Target (repository:tag)").fill("username/test:latest")
    screenshot(page, "assemble-1-empty-builder")

    # Drag the amd64 image into the list; add the arm64 one from the keyboard.
    page.locator("#candidates li", has=page.get_by_role("button", name="Add username/x8664-test:latest")).drag_to(
        page.locator("#entries"))
    add = page.get_by_role("button", name="Add username/arm64v8-test:latest")
    add.focus()
    page.keyboard.press("Enter")
    assert page.locator("#entries li.entry").count() == 2

    # The arm64 image's config names no variant: annotate it, as `docker manifest annotate --variant v8`.
    arm = _entry(page, "username/arm64v8-test:latest")
    arm.get_by_label("variant of username/arm64v8-test:latest").fill("v8")
    page.get_by_role("button", name="Check and preview").click()  # the no-JavaScript path re-renders the page
    preview = page.locator("#preview-json")
    preview.wait_for(state="attached")
    listing = json.loads(preview.text_content())
    platforms = {(m["platform"]["architecture"], m["platform"].get("variant", "")) for m in listing["manifests"]}
    assert platforms == {("amd64", ""), ("arm64", "v8")}
    assert "docker buildx imagetools create -t" in page.locator("#preview .command code").text_content()
    assert page.locator("tr.diff-added").count() == 2
    screenshot(page, "assemble-2-preview")

    page.get_by_role("button", name="Push username/test:latest").click()
    page.wait_for_selector("[data-status=succeeded], [data-status=failed]", timeout=60_000)
    screenshot(page, "assemble-3-pushed")
    assert page.locator("[data-status]").get_attribute("data-status") == "succeeded", page.locator("#job").inner_text()
    assert page.locator("#job").get_by_text("blobs mounted 4").count() == 1

    # Any client pulling username/test:latest gets the image for its platform.
    creds = [c.replace("--creds", "--src-creds") for c in running.skopeo_creds()]
    ref = f"docker://{running.host}/username/test:latest"
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", *running.skopeo_creds(), ref).stdout)
    assert raw["manifests"] == listing["manifests"]
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        extra = ["--override-variant", variant] if variant else []
        skopeo("copy", "--src-tls-verify=false", *creds, "--override-os", "linux", "--override-arch", arch, *extra,
               ref, f"oci:{tmp_path / arch}")
    assert page.console_errors == [], page.console_errors


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_platform_is_shown_next_to_the_entry_and_push_stays_disabled(
    page, login, live_server, canonical_registry, screenshot
):
    _, registry = canonical_registry
    login(page)
    page.goto(f"{live_server.url}/build/?registry={registry.name}")
    page.get_by_label("Target (repository:tag)").fill("username/dup:latest")
    for _ in range(2):
        page.get_by_role("button", name="Add username/x8664-test:latest").click()
    problems = page.locator("#entries li.entry").nth(1).locator(".problems")
    problems.get_by_text("linux/amd64 is already provided by source 1").wait_for()
    assert page.locator("#push-button").is_disabled()
    screenshot(page, "assemble-duplicate-refused")
    # Removing the second entry clears the message and allows the push.
    page.locator("#entries li.entry").nth(1).get_by_role("button", name="Remove").click()
    # (Not wait_for_function: it evaluates script, which the page's CSP rightly forbids.)
    expect(page.locator("#push-button")).to_be_enabled()
    assert page.console_errors == [], page.console_errors


@pytest.mark.django_db(transaction=True)
def test_the_builder_works_without_javascript(browser, login, live_server, canonical_registry, screenshot):
    _, registry = canonical_registry
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1300, "height": 900})
    page = context.new_page()
    login(page)
    page.goto(f"{live_server.url}/build/?registry={registry.name}")
    page.get_by_label("Target (repository:tag)").fill("username/nojs:latest")
    page.get_by_role("button", name="Add username/x8664-test:latest").click()
    page.get_by_role("button", name="Add username/arm64v8-test:latest").click()
    assert page.locator("#entries li.entry").count() == 2
    page.get_by_role("button", name="Remove username/x8664-test:latest").click()
    assert page.locator("#entries li.entry").count() == 1
    listing = json.loads(page.locator("#preview-json").text_content())
    assert [m["platform"]["architecture"] for m in listing["manifests"]] == ["arm64"]
    screenshot(page, "assemble-without-javascript")
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_tag_moved_after_the_preview_stops_the_push_until_the_user_confirms(
    page, login, live_server, canonical_registry, celery_worker, screenshot
):
    running, registry = canonical_registry
    login(page)
    page.goto(f"{live_server.url}/build/?registry={registry.name}&target=username/x8664-test:latest")
    page.get_by_role("button", name="Add username/arm64v8-test:latest").click()
    page.get_by_label("variant of username/arm64v8-test:latest").fill("v8")
    page.get_by_role("button", name="Check and preview").click()
    page.locator("#preview-json").wait_for(state="attached")
    # Someone pushes to the tag after the preview.
    with running.client() as client:
        moved = image_push(client, repository="username/x8664-test", tag="latest", platform=Platform("linux", "amd64"),
                           content="someone else's build")
    page.get_by_role("button", name="Push username/x8664-test:latest").click()
    page.wait_for_selector("[data-status=failed], [data-status=succeeded]", timeout=60_000)
    assert page.locator("[data-status]").get_attribute("data-status") == "failed"
    job_text = page.locator("#job").inner_text()
    assert "the tag moved since the preview" in job_text
    assert "Manifests copied" not in job_text  # nothing was copied: no empty copy summary either
    with running.client() as client:
        assert client.head_manifest("username/x8664-test", "latest").digest == moved.digest  # untouched
    screenshot(page, "assemble-tag-moved")
    failed_url = page.url
    page.get_by_role("button", name="Push anyway").click()
    # Nothing is rewritten without asking: a dialog names the tag and both digests.
    dialog = page.get_by_role("dialog", name="Overwrite username/x8664-test:latest?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(moved.digest)
    from manifests.models import Job

    expect(dialog).to_contain_text(Job.objects.filter(kind="push").latest("pk").params["preview_digest"])
    screenshot(page, "assemble-tag-moved-confirm")
    dialog.get_by_role("button", name="Overwrite latest").click()
    page.wait_for_url(lambda url: url != failed_url)
    page.wait_for_selector("[data-status=failed], [data-status=succeeded]", timeout=60_000)
    assert page.locator("[data-status]").get_attribute("data-status") == "succeeded", page.locator("#job").inner_text()
    screenshot(page, "assemble-tag-moved-overwritten")
    assert page.console_errors == [], page.console_errors
