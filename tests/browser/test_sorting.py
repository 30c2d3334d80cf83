"""Sortable tables and exports that download."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_repository_table_sorts_by_a_column_and_back(page, login, live_server, demo_registry):
    from manifests.models import Repository

    login(page)
    page.goto(f"{live_server.url}/registries/demo/")
    first_cells = page.locator("table.grid tbody tr td:first-child")
    page.get_by_role("link", name="Tags", exact=True).click()
    by_tags = [r.name for r in Repository.objects.order_by("tag_count", "name")]
    expect(page.get_by_role("columnheader", name="Tags")).to_have_attribute("aria-sort", "ascending")
    assert [int(t) for t in page.locator("table.grid tbody tr td:nth-child(2)").all_inner_texts()] == sorted(
        r.tag_count for r in Repository.objects.all())
    assert sorted(first_cells.all_inner_texts()) == sorted(by_tags)
    page.get_by_role("link", name="Tags", exact=True).click()
    expect(page.get_by_role("columnheader", name="Tags")).to_have_attribute("aria-sort", "descending")
    counts = [int(t) for t in page.locator("table.grid tbody tr td:nth-child(2)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True)


def test_the_tag_table_sorts_by_name(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/windows-app/")
    page.get_by_role("link", name="Tags", exact=True).click()
    names = page.locator("table.tags tbody a.tagname").all_inner_texts()
    assert names == sorted(names)
    page.get_by_role("link", name="Tags", exact=True).click()
    names = page.locator("table.tags tbody a.tagname").all_inner_texts()
    assert names == sorted(names, reverse=True)


def test_the_coverage_matrix_sorts_by_a_platform_column(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/coverage")
    table = page.locator("table.matrix")
    table.get_by_role("button", name="linux/arm64").click()
    header = table.get_by_role("columnheader", name="linux/arm64")
    expect(header).to_have_attribute("aria-sort", "ascending")
    column = [h.replace("↕", "").replace("↑", "").strip() for h in table.locator("thead th").all_inner_texts()].index(
        "linux/arm64")
    cells = [row.locator("td").nth(column).inner_text().strip() for row in table.locator("tbody tr").all()]
    assert cells == sorted(cells) and len(set(cells)) > 1, cells
    table.get_by_role("button", name="linux/arm64").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    cells = [row.locator("td").nth(column).inner_text().strip() for row in table.locator("tbody tr").all()]
    assert cells == sorted(cells, reverse=True), cells


def test_both_exports_download(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/coverage")
    for name, kind in (("CSV", "csv"), ("JSON", "json")):
        with page.expect_download() as download:
            page.get_by_role("link", name=name, exact=True).click()
        assert download.value.suggested_filename == f"coverage-demo.{kind}"
        if kind == "json":
            with open(download.value.path()) as handle:
                assert json.load(handle)["registry"] == "demo"
