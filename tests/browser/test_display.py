"""One way to show things everywhere: digests, commands with copy buttons, times with their zone, error pages, search."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import demo_pages

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_tag_page_puts_docker_pull_by_digest_first_and_every_command_has_a_copy_button(
    page, login, live_server, demo_registry, demo_registry_server
):
    from manifests.models import Tag

    tag = Tag.objects.get(repository__name="demo/webapp", name="1.4")
    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/t/1.4")
    commands = page.locator(".command")
    expect(commands.first.locator("code")).to_have_text(f"docker pull {demo_registry_server.host}/demo/webapp@{tag.digest}")
    assert commands.count() == 6
    for i in range(commands.count()):
        command = commands.nth(i)
        text = command.locator("code").inner_text()
        expect(command.get_by_role("button", name=re.compile("^Copy"))).to_have_attribute("data-copy", text)
    # Nothing is cut off at the right: each command wraps inside the page.
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_every_digest_is_shown_one_way_with_its_copy_button(page, login, live_server, demo_registry):
    login(page)
    for spec in demo_pages():
        if spec.status != 200:
            continue
        page.goto(f"{live_server.url}{spec.path}")
        for digest in page.locator(".digest").all():
            code = digest.locator("code")
            full = code.get_attribute("title")
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", full), (spec.path, full)
            assert code.text_content() == full[:19] + "…", (spec.path, code.text_content())
            assert digest.locator("button.copy").get_attribute("data-copy") == full, spec.path


def test_every_time_is_relative_with_the_absolute_time_and_zone_on_hover(page, login, live_server, demo_registry):
    login(page)
    seen = 0
    for path in ("/", "/registries/demo/", "/registries/demo/r/demo/webapp/", "/registries/demo/r/demo/webapp/t/1.4",
                 "/jobs/"):
        page.goto(f"{live_server.url}{path}")
        for time in page.locator("main time").all():
            seen += 1
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", time.get_attribute("title")), path
            assert re.fullmatch(r"just now|(in )?\d+ (minute|hour|day|month|year)s?( ago)?", time.inner_text()), (
                path, time.inner_text())
            assert "0 minutes" not in time.inner_text()
    assert seen >= 5


def test_a_forbidden_page_is_a_403_inside_the_layout(page, live_server, demo_registry, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_user("vera", password="vera-password")  # may read, may not push
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill("vera-password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    response = page.goto(f"{live_server.url}/build/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="Go to the registries")).to_be_visible()


def test_the_bar_search_finds_every_tag_and_list_holding_a_digest_prefix(page, login, live_server, demo_registry):
    from manifests.models import Tag

    webapp = Tag.objects.select_related("manifest").get(repository__name="demo/webapp", name="1.4")
    child = webapp.manifest.children.get(platform="linux/arm64")
    holders = sorted(f"{t.repository.name}:{t.name}" for t in Tag.objects.filter(manifest__children__digest=child.digest))
    assert len(holders) >= 2
    login(page)
    page.get_by_label("Search repositories, tags and digests").fill(child.digest[7:19])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Lists holding it as a child"))).to_be_visible()
    lists = page.get_by_role("region", name="Lists holding the digest").locator("tbody tr td:first-child")
    expect(lists).to_have_text(holders)

    page.get_by_label("Search repositories, tags and digests").fill("webapp")
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="demo/webapp", exact=True)).to_be_visible()
