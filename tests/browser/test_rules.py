"""The seed's rule made in a browser, dry run, applied by the worker, then kept assembled by notifications."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from manifests.jobs import job_create, job_run
from manifests.models import Job, PushRecord, Registry, Rule, Tag
from registry import errors
from registry.images import image_push
from registry.platform import Platform

X86, ARM = "username/x8664-test", "username/arm64v8-test"
AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64", "v8")


@pytest.fixture
def notifying_registry(fresh_registry, live_server, redis_server):
    """Distribution with notifications to the dashboard; the seed's per-platform tags, scanned once."""
    registry = Registry(name="lab", url="http://127.0.0.1:1", insecure=True, auth=Registry.AUTH_BASIC)
    registry.save()
    token = registry.webhook_token_rotate()
    running = fresh_registry("basic", notify_url=f"{live_server.url}/hooks/registry/lab", notify_token=token)
    username, password = running.credentials()
    registry.url, registry.username = running.url, username
    registry.set_secret(password)
    registry.save()
    with running.client() as client:
        for tag in ("1.0", "1.1"):
            image_push(client, repository=X86, tag=tag, platform=AMD64)
            image_push(client, repository=ARM, tag=tag, platform=ARM64)
        image_push(client, repository=X86, tag="1.2", platform=AMD64)  # arm64 not built yet
    job_run(inline=True, job_id=job_create(kind="scan", registry=registry, target="lab", params={}).pk)
    return running, registry


def _head(running, repository: str, tag: str) -> str:
    with running.client() as client:
        try:
            return client.head_manifest(repository, tag).digest
        except errors.NotFound:
            return ""


@pytest.mark.django_db(transaction=True)
def test_the_seed_rule_made_in_the_ui_keeps_username_test_assembled(
    page, login, live_server, notifying_registry, celery_worker, screenshot, skopeo, tmp_path, record_property
):
    running, registry = notifying_registry
    login(page)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name", exact=True).fill("seed")
    page.get_by_label("Registry", exact=True).select_option("lab")
    page.get_by_label("Target", exact=True).fill("username/test:{tag}")
    page.get_by_label("Sources", exact=True).fill(f"{X86}\n{ARM} linux/arm64/v8")
    page.get_by_label("Which tags").select_option("all")
    screenshot(page, "rules-1-form")
    page.get_by_role("button", name="Save and see the dry run").click()

    table = page.locator("#dry-run")
    expect(table.locator('tr[data-tag="1.0"]')).to_have_attribute("data-status", "new")
    expect(table.locator('tr[data-tag="1.1"]')).to_have_attribute("data-status", "new")
    incomplete = table.locator('tr[data-tag="1.2"]')
    expect(incomplete).to_have_attribute("data-status", "incomplete")
    expect(incomplete).to_contain_text(f"{ARM}:1.2")
    screenshot(page, "rules-2-dry-run")
    page.get_by_role("button", name="Apply to the selected tags").click()
    expect(page.locator("#job [data-status]")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#rule-progress")).to_contain_text("2 of 2 tags")
    expect(page.locator('#rule-result tr[data-tag="1.0"]')).to_contain_text("pushed")
    screenshot(page, "rules-3-applied")
    rule = Rule.objects.get(name="seed")
    assert PushRecord.objects.filter(rule=rule).count() == 2

    # A new pair of per-platform builds arrives; notifications do the rest.
    with running.client() as client:
        image_push(client, repository=X86, tag="NEW", platform=AMD64)
        image_push(client, repository=ARM, tag="NEW", platform=ARM64)
    pushed_at = time.monotonic()
    deadline = pushed_at + 60  # the target is 10 s; a loaded machine gets room, the time is recorded
    while not _head(running, "username/test", "NEW") and time.monotonic() < deadline:
        time.sleep(0.2)
    elapsed = time.monotonic() - pushed_at
    record_property("seconds_to_username_test_NEW", round(elapsed, 2))
    assert _head(running, "username/test", "NEW"), (
        [(j.pk, j.kind, j.status, j.target, j.params, j.error, j.result) for j in Job.objects.order_by("pk")],
        [line for line in celery_worker.log().splitlines() if "rules" in line or "ERROR" in line][-20:])
    print(f"username/test:NEW appeared {elapsed:.1f}s after the push")

    ref = f"docker://{running.host}/username/test:NEW"
    creds = running.skopeo_creds()
    listing = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", *creds, ref).stdout)
    assert {m["platform"]["architecture"] for m in listing["manifests"]} == {"amd64", "arm64"}
    for arch, extra in (("amd64", []), ("arm64", ["--override-variant", "v8"])):
        skopeo("copy", "--src-tls-verify=false", *[c.replace("--creds", "--src-creds") for c in creds],
               "--override-os", "linux", "--override-arch", arch, *extra, ref, f"dir:{tmp_path / arch}")
        config = json.loads(next(p for p in (tmp_path / arch).iterdir()
                                 if p.read_bytes().startswith(b'{"architecture"')).read_text())
        assert config["architecture"] == arch
    deadline = time.monotonic() + 30
    while not Tag.objects.filter(repository__name="username/test", name="NEW").exists() \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    page.goto(f"{live_server.url}/rules/{rule.pk}/")
    expect(page.locator('#dry-run tr[data-tag="NEW"]')).to_have_attribute("data-status", "unchanged")
    # Each source's move queued a job: one pushed the list, the other may have found it in place.
    expect(page.locator('#dry-run tr[data-tag="NEW"]')).to_contain_text(re.compile(r"pushed|unchanged"))
    assert PushRecord.objects.filter(rule=rule, tag="NEW").count() >= 1
    screenshot(page, "rules-4-kept-assembled")
    assert not page.console_errors, page.console_errors
