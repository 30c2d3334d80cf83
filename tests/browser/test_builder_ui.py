"""The builder as a user meets it: errors at their fields, the summary beside the list, a palette without
duplicates, keyboard reordering, "auto" by default, a Push that looks disabled when it is."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)


def _builder(page: Page, live_server, target: str = "") -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/build/?registry=demo" + (f"&target={target}" if target else ""))


def test_a_bad_target_is_marked_on_its_field_with_the_message_below_it(page, login, live_server, demo_registry,
                                                                       screenshot):
    login(page)
    _builder(page, live_server)
    page.get_by_role("button", name="Add username/x8664-test:latest").click()
    target = page.get_by_label("Target (repository:tag)")
    target.fill("username/test:bad tag!")
    expect(target).to_have_attribute("aria-invalid", "true")
    message = page.locator("#error-target")
    expect(message).to_have_text("'bad tag!' is not a valid tag: up to 128 letters, digits, '_', '.' or '-', "
                                  "not starting with '.' or '-'")
    assert "error-target" in target.get_attribute("aria-describedby").split()
    # Below the field, not under the palette.
    field, below = target.bounding_box(), message.bounding_box()
    assert below["y"] >= field["y"] + field["height"] and abs(below["x"] - field["x"]) < 40, (field, below)
    expect(page.get_by_text(re.compile(r"^target:"))).to_have_count(0)
    expect(page.locator("#push-button")).to_be_disabled()
    screenshot(page, "builder-bad-target")
    target.fill("username/test:good")
    expect(target).not_to_have_attribute("aria-invalid", "true")
    expect(message).to_be_empty()


def test_an_unknown_reference_is_reported_once_at_its_entry(client, live_server, demo_registry):
    """What a stale page would post: an entry whose image is no longer in the inventory."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ub", "ub@example.com", "x"))
    response = client.post("/build/preview", {
        "registry": "demo", "target": "username/test:latest", "format": "auto",
        "e_key": "e0", "e_ref": "username/nothing:latest", "e_select": "", "e_label": "username/nothing:latest",
        "e_os": "", "e_arch": "", "e_variant": "", "e_os_version": "", "e_os_features": "", "e_annotations": ""})
    text = response.content.decode()
    assert response.status_code == 200
    assert text.count("is not in the inventory") == 1
    assert "username/nothing:latest: " not in text  # the reference is not printed twice
    assert "the list has no entries" not in text and "give at least one source" not in text


def test_starting_from_a_new_tag_says_it_starts_empty(page, login, live_server, demo_registry):
    login(page)
    _builder(page, live_server)
    page.get_by_label("Target (repository:tag)").fill("username/brand-new:v1")
    page.get_by_role("button", name="Start from what the tag holds").click()
    expect(page.get_by_text("username/brand-new:v1 holds nothing in demo yet")).to_be_visible()
    expect(page.get_by_text("give at least one source")).to_have_count(0)
    expect(page.get_by_label("Target (repository:tag)")).not_to_have_attribute("aria-invalid", "true")


def test_the_summary_with_digest_diff_and_push_stands_beside_the_list(page, login, live_server, demo_registry,
                                                                       screenshot):
    login(page)
    _builder(page, live_server, "demo/webapp:1.4")
    summary = page.get_by_role("region", name="Before you push")
    the_list = page.get_by_role("region", name="The list")
    expect(summary.locator(".diff")).to_be_visible()
    push = page.locator("#push-button")
    expect(push).to_be_in_viewport()
    expect(summary.locator(".digest").first).to_be_in_viewport()
    assert summary.bounding_box()["x"] > the_list.bounding_box()["x"] + the_list.bounding_box()["width"] - 1
    # Scrolled down the list, the summary stays in view.
    page.mouse.wheel(0, 600)
    page.wait_for_timeout(200)
    expect(push).to_be_in_viewport()
    screenshot(page, "builder-summary-beside-the-list")


def test_a_disabled_push_looks_disabled(page, login, live_server, demo_registry):
    login(page)
    _builder(page, live_server)
    push = page.locator("#push-button")
    expect(push).to_be_disabled()
    style = push.evaluate("el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).cursor]")
    check = page.get_by_role("button", name="Check and preview")
    accent = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()")
    assert style[1] == "not-allowed"
    # Not the accent blue of an active primary button, and dashed like nothing clickable.
    assert accent == "#1f4fc7" and style[0] != "rgb(31, 79, 199)", style
    assert push.evaluate("el => getComputedStyle(el).borderStyle") == "dashed"
    assert check.evaluate("el => getComputedStyle(el).cursor") == "pointer"


def test_the_palette_groups_by_repository_shows_each_digest_once_and_marks_what_is_added(
    page, login, live_server, demo_registry
):
    login(page)
    _builder(page, live_server)
    palette = page.locator("#candidates")
    groups = palette.locator("h3").all_inner_texts()
    assert groups == sorted(groups) and len(groups) == len(set(groups)) and "demo/webapp" in groups
    for group in palette.locator("section.palette-group").all():
        digests = [row.get_attribute("data-digest") for row in group.locator("li.candidate").all()]
        assert len(digests) == len(set(digests)), digests
    search = page.get_by_label("Search by repository, tag or platform")
    search.fill("arm/v7")
    expect(palette.locator("li.candidate").first).to_contain_text("linux/arm/v7")
    digests = [row.get_attribute("data-digest") for row in palette.locator("li.candidate").all()]
    assert digests and len(digests) == len(set(digests))
    search.fill("")
    row = palette.locator("li.candidate", has=page.get_by_role("button", name="Add username/x8664-test:latest"))
    expect(row).not_to_contain_text("added")
    row.get_by_role("button", name="Add username/x8664-test:latest").click()
    expect(row).to_contain_text("added")


def test_auto_is_the_default_format(page, login, live_server, demo_registry):
    login(page)
    _builder(page, live_server)
    expect(page.get_by_label("Format")).to_have_value("auto")


def test_entries_reorder_from_the_keyboard_and_the_preview_follows(page, login, live_server, demo_registry):
    login(page)
    _builder(page, live_server, "demo/webapp:1.4")
    labels = page.locator("#entries .entry-label")
    expect(labels).to_have_text(["demo/webapp:1.4 → linux/amd64", "demo/webapp:1.4 → linux/arm64",
                                 "demo/webapp:1.4 → linux/arm/v7"])
    down = page.get_by_role("button", name="Move down demo/webapp:1.4 → linux/amd64")
    down.focus()
    page.keyboard.press("Enter")
    expect(labels).to_have_text(["demo/webapp:1.4 → linux/arm64", "demo/webapp:1.4 → linux/amd64",
                                 "demo/webapp:1.4 → linux/arm/v7"])
    expect(down).to_be_focused()
    expect(page.locator("#builder-status")).to_have_text("demo/webapp:1.4 → linux/amd64 moved to position 2 of 3")
    page.get_by_label("variant of demo/webapp:1.4 → linux/arm/v7").focus()
    page.keyboard.press("Alt+ArrowUp")
    expect(labels).to_have_text(["demo/webapp:1.4 → linux/arm64", "demo/webapp:1.4 → linux/arm/v7",
                                 "demo/webapp:1.4 → linux/amd64"])

    def order() -> list[str]:
        text = page.locator("#preview-json").text_content() or "{}"
        return [m["platform"]["architecture"] for m in json.loads(text).get("manifests", [])
                if m.get("platform", {}).get("os") != "unknown"]

    expect(page.locator("#preview tr.diff-unchanged")).to_have_count(3)
    # The preview follows the last order (htmx answers may arrive one after another).
    page.wait_for_function("""() => {
      const pre = document.querySelector('#preview-json');
      if (!pre) return false;
      const archs = JSON.parse(pre.textContent).manifests.map((m) => m.platform.architecture);
      return archs.slice(0, 3).join(',') === 'arm64,arm,amd64';
    }""")
    assert order()[:3] == ["arm64", "arm", "amd64"]


def test_a_duplicate_platform_names_the_other_source_counted_from_one(page, login, live_server, demo_registry):
    login(page)
    _builder(page, live_server)
    page.get_by_label("Target (repository:tag)").fill("username/test:dup")
    page.get_by_role("button", name="Add username/x8664-test:latest").click()
    page.get_by_role("button", name="Add demo/cli:latest").click()
    second = page.locator("#entries .entry").nth(1)
    expect(second.locator(".problems")).to_contain_text("linux/amd64 is already provided by source 1")
    expect(second).to_have_class(re.compile(r"\bhas-error\b"))
