"""The layout at a phone's width and a wide screen: the bar, the skip link, tables, the builder's panels."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_a11y import _log_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def phone(browser, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    context = browser.new_context(viewport={"width": 360, "height": 760})
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


def test_on_a_phone_the_links_fold_behind_menu_and_log_out_stays_on_the_bar(
    phone, live_server, demo_registry, django_user_model, screenshot
):
    page = phone
    _log_in(page, live_server.url, django_user_model)
    log_out = page.get_by_role("button", name="Log out")
    expect(log_out).to_be_visible()
    box = log_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360, box
    coverage = page.get_by_role("navigation", name="Main").get_by_role("link", name="Coverage")
    expect(coverage).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(coverage).to_be_visible()
    expect(page.get_by_label("Search repositories, tags and digests")).to_be_visible()
    screenshot(page, "phone-menu-open")
    coverage.click()
    expect(page.get_by_role("heading", name="Platform coverage")).to_be_visible()
    # The matrix is wider than the phone: it scrolls inside its own region, which takes focus; the page does not.
    region = page.get_by_role("region", name="Coverage matrix")
    expect(region).to_have_attribute("tabindex", "0")
    assert region.evaluate("el => el.scrollWidth > el.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.console_errors == []


def test_on_a_wide_screen_the_links_show_without_a_menu_and_mark_the_current_page(
    page, login, live_server, demo_registry
):
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page)
    page.goto(f"{live_server.url}/jobs/")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Jobs")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Coverage")).not_to_have_attribute("aria-current", "page")


def test_the_skip_link_is_the_first_stop_and_moves_focus_to_the_content(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/registries/demo/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    # Focus is visible: an outline is drawn around the focused link.
    assert skip.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    # The next stop is the page's own first link (the breadcrumb), past the bar.
    expect(page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Registries")).to_be_focused()


def test_on_a_phone_the_tag_table_becomes_cards_with_labelled_cells(
    phone, live_server, demo_registry, django_user_model, screenshot
):
    page = phone
    _log_in(page, live_server.url, django_user_model)
    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/")
    row = page.locator("table.tags tbody tr").first
    assert row.evaluate("el => getComputedStyle(el).display") == "block"
    label = row.locator("td[data-label=Platforms]").evaluate("el => getComputedStyle(el, '::before').content")
    assert label == '"Platforms"'
    screenshot(page, "phone-tag-cards")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_on_a_phone_the_builder_stacks_its_panels(phone, live_server, demo_registry, django_user_model, screenshot):
    page = phone
    _log_in(page, live_server.url, django_user_model)
    page.goto(f"{live_server.url}/build/?registry=demo&target=demo/webapp:1.4")
    panels = page.locator(".builder > .panel")
    first, second = panels.nth(0).bounding_box(), panels.nth(1).bounding_box()
    assert second["y"] >= first["y"] + first["height"], (first, second)
    assert second["x"] + second["width"] <= 360
    screenshot(page, "phone-builder")
