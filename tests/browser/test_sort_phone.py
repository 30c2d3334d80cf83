"""Sorting on a phone: the tables are cards there and their headers hidden, so the filter form sorts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def _phone(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})


def test_the_tag_list_sorts_from_a_select_on_a_phone(page, login, live_server, demo_registry):
    login(page)
    _phone(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/windows-app/")
    # The column headers are hidden in card mode: the select is the visible way to sort.
    expect(page.locator("table.tags thead")).not_to_be_in_viewport()
    select = page.get_by_label("Sort by")
    expect(select).to_be_visible()
    select.select_option(label="Tags, descending")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**sort=-name**")
    names = page.locator("table.tags tbody a.tagname").all_inner_texts()
    assert len(names) > 1 and names == sorted(names, reverse=True), names
    # The page remembers the choice, and the column header agrees with it.
    expect(page.get_by_label("Sort by")).to_have_value("-name")
    expect(page.get_by_role("columnheader", name="Tags")).to_have_attribute("aria-sort", "descending")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_the_repository_list_sorts_from_a_select_on_a_phone_and_keeps_the_filter(page, login, live_server,
                                                                                  demo_registry):
    from manifests.models import Repository

    login(page)
    _phone(page)
    page.goto(f"{live_server.url}/registries/demo/?q=demo")
    page.get_by_label("Sort by").select_option(label="Tags, descending")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**sort=-tags**")
    assert "q=demo" in page.url
    counts = [int(t.split()[-1]) for t in page.locator("table.grid tbody tr td:nth-child(2)").all_inner_texts()]
    assert counts == sorted((r.tag_count for r in Repository.objects.filter(name__contains="demo")), reverse=True)
    assert len(set(counts)) > 1, counts
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_on_a_wide_screen_the_headers_sort_and_the_select_is_not_shown(page, login, live_server, demo_registry):
    login(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/registries/demo/r/demo/windows-app/?sort=-name")
    expect(page.get_by_label("Sort by")).to_be_hidden()
    expect(page.get_by_role("columnheader", name="Tags")).to_be_visible()
    # A filter typed after sorting by a header keeps that sort (the hidden select carries it).
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**sort=-name**")
