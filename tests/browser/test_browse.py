"""Browsing the demo registry in a real browser, as a new user would.

Each test logs in, looks at what a person sees (text in cells and chips, what
a click reveals) and keeps full-page screenshots in test-artifacts/browser/.
Every page visited must leave the browser console clean: a CSP violation, a
failed script or an uncaught error shows up there.
"""

from __future__ import annotations

import csv
import datetime
import io
import re

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.django_db(transaction=True)

DEMO_REPOSITORIES = [
    "demo/cli",
    "demo/legacy",
    "demo/tools",
    "demo/webapp",
    "demo/windows-app",
    "username/arm64v8-test",
    "username/x8664-test",
]
LACKING_ARM64 = ["demo/cli", "demo/legacy", "demo/windows-app", "username/x8664-test"]


# -- helpers -------------------------------------------------------------------


def _open(page: Page, url: str) -> None:
    """Go to a page as a user would (address bar), and insist it answered 200."""
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    page.wait_for_load_state("load")


def _assert_console_clean(page: Page) -> None:
    # Any console error (a CSP violation, a failed request, a script error) is a broken page.
    assert page.console_errors == [], page.console_errors
    assert page.bad_responses == [], page.bad_responses


def _chips(scope: Locator) -> list[str]:
    return [text.strip() for text in scope.locator(".chip").all_inner_texts()]


def _row(table: Locator, text: str) -> Locator:
    """The one body row whose first cell holds a link named exactly `text`."""
    rows = table.locator("tbody tr").filter(
        has=table.page.locator("td:first-child").get_by_role("link", name=text, exact=True)
    )
    expect(rows).to_have_count(1)
    return rows


def _column(table: Locator, header: str) -> int:
    # Sortable headers carry an arrow hidden from screen readers: ↕, ↑ or ↓.
    headers = [h.strip(" ↕↑↓\n") for h in table.locator("thead th").all_inner_texts()]
    assert header in headers, headers
    return headers.index(header)


def _expect_first_cells(table: Locator, expected: list[str]) -> None:
    """The first cell of every row, in order, once the page has settled on them."""
    expect(table.locator("tbody tr td:first-child")).to_have_text(
        [re.compile(rf"^\s*{re.escape(name)}\s*$") for name in expected])


def _digest(registry_server, repository: str, reference: str) -> str:
    with registry_server.client() as client:
        return client.get_manifest(repository, reference).digest


# -- registries and repositories -----------------------------------------------


def test_the_registries_page_lists_the_demo_registry_with_counts_and_platforms(
    page, login, live_server, demo_registry, screenshot
):
    login(page)
    _open(page, f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Registries")).to_be_visible()
    expect(page.get_by_role("status")).to_have_count(0)  # no "queue unreachable" banner
    table = page.locator("table.grid")
    row = _row(table, "demo")
    cells = row.locator("td")
    expect(cells.nth(_column(table, "Repositories"))).to_have_text("7")
    expect(cells.nth(_column(table, "Tags"))).to_have_text("12")
    assert _chips(cells.nth(_column(table, "Platforms seen"))) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "windows/amd64",
    ]
    # One time format: relative, with the absolute time and its zone on hover.
    expect(cells.nth(_column(table, "Last scan"))).to_have_text(re.compile(r"just now|ago"))
    expect(cells.nth(_column(table, "Last scan")).locator("time")).to_have_attribute(
        "title", re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    screenshot(page, "registries")
    _assert_console_clean(page)

    page.get_by_role("link", name="demo", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/registries/demo/")
    _expect_first_cells(page.locator("table.grid"), DEMO_REPOSITORIES)
    _assert_console_clean(page)


def test_the_repository_list_shows_each_platform_union_and_list_count(
    page, login, live_server, demo_registry, screenshot
):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/")
    table = page.locator("table.grid")
    _expect_first_cells(table, DEMO_REPOSITORIES)
    expected = {
        # repository: (tags, lists, platform chips in the fixed order)
        "demo/cli": ("2", "0", ["linux/amd64", "linux/arm64"]),
        "demo/legacy": ("1", "1", ["linux/amd64", "linux/386"]),
        "demo/tools": ("1", "1", ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]),
        "demo/webapp": ("3", "3", ["linux/amd64", "linux/arm64", "linux/arm/v7"]),
        "demo/windows-app": ("3", "1", ["windows/amd64"]),
        "username/arm64v8-test": ("1", "0", ["linux/arm64"]),
        "username/x8664-test": ("1", "0", ["linux/amd64"]),
    }
    tags_col, lists_col, platforms_col = (_column(table, h) for h in ("Tags", "Lists", "Platforms"))
    seen = {}
    for name in DEMO_REPOSITORIES:
        cells = _row(table, name).locator("td")
        seen[name] = (
            cells.nth(tags_col).inner_text().strip(),
            cells.nth(lists_col).inner_text().strip(),
            _chips(cells.nth(platforms_col)),
        )
    assert seen == expected
    screenshot(page, "repositories")
    _assert_console_clean(page)


def test_searching_repositories_by_name_keeps_only_the_matches(page, login, live_server, demo_registry, screenshot):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/")
    page.get_by_label("Repository").fill("demo/w")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]q=demo%2Fw"))
    _expect_first_cells(page.locator("table.grid"), ["demo/webapp", "demo/windows-app"])
    expect(page.get_by_label("Repository")).to_have_value("demo/w")
    screenshot(page, "repositories-search-demo-w")

    page.get_by_label("Repository").fill("nothing-like-this")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.grid tbody")).to_have_text("No repository matches.")
    _assert_console_clean(page)


def test_filtering_repositories_by_platform_keeps_those_that_have_it(
    page, login, live_server, demo_registry, screenshot
):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/")
    page.get_by_label("Platform").fill("linux/arm64")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]platform=linux%2Farm64"))
    with_arm64 = ["demo/cli", "demo/tools", "demo/webapp", "username/arm64v8-test"]
    _expect_first_cells(page.locator("table.grid"), with_arm64)
    expect(page.get_by_role("alert")).to_have_count(0)
    screenshot(page, "repositories-platform-linux-arm64")

    # docker's spelling with the arm64 variant means the same platform.
    page.get_by_label("Platform").fill("linux/arm64/v8")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]platform=linux%2Farm64%2Fv8"))
    _expect_first_cells(page.locator("table.grid"), with_arm64)

    page.get_by_label("Platform").fill("windows/amd64")
    page.get_by_role("button", name="Filter").click()
    _expect_first_cells(page.locator("table.grid"), ["demo/windows-app"])
    _assert_console_clean(page)


def test_an_invalid_platform_filter_shows_an_error_by_the_field_and_no_server_error(
    page, login, live_server, demo_registry, screenshot
):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/")
    page.get_by_label("Platform").fill("linux")
    with page.expect_response(re.compile(r"/registries/demo/\?")) as answer:
        page.get_by_role("button", name="Filter").click()
    assert answer.value.status == 200
    form = page.locator("main").get_by_role("search")
    alert = form.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("'linux' is not a platform")
    expect(alert).to_contain_text("os/arch")
    expect(page.get_by_label("Platform")).to_have_value("linux")
    # Beside the field: on the same line, to its right.
    field_box = page.get_by_label("Platform").bounding_box()
    alert_box = alert.bounding_box()
    assert field_box and alert_box
    assert alert_box["x"] >= field_box["x"] + field_box["width"] - 1, (field_box, alert_box)
    assert abs((alert_box["y"] + alert_box["height"] / 2) - (field_box["y"] + field_box["height"] / 2)) < 30
    expect(page.get_by_text("Server Error")).to_have_count(0)
    screenshot(page, "repositories-platform-invalid")
    _assert_console_clean(page)


# -- tags ------------------------------------------------------------------------


def test_the_webapp_tag_list_groups_tags_sharing_a_digest_with_chips_in_the_fixed_order(
    page, login, live_server, demo_registry, demo_registry_server, screenshot
):
    index_digest = _digest(demo_registry_server, "demo/webapp", "1.4")
    older_digest = _digest(demo_registry_server, "demo/webapp", "1.3")
    login(page)
    _open(page, f"{live_server.url}/registries/demo/")
    page.get_by_role("link", name="demo/webapp", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/registries/demo/r/demo/webapp/")
    table = page.locator("table.tags")
    expect(table.locator("tbody tr")).to_have_count(2)  # {1.4, latest} and {1.3}

    row = _row(table, "1.4")
    cells = row.locator("td")
    expect(cells.nth(_column(table, "Tags")).get_by_role("link")).to_have_text(["1.4", "latest"])
    expect(cells.nth(_column(table, "Kind"))).to_have_text("LIST", use_inner_text=True)  # as rendered
    assert _chips(cells.nth(_column(table, "Platforms"))) == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    digest_cell = cells.nth(_column(table, "Digest"))
    expect(digest_cell).to_contain_text("index")
    expect(digest_cell).to_contain_text(index_digest[: len("sha256:") + 12])
    copy = digest_cell.get_by_role("button", name="Copy digest")
    expect(copy).to_have_attribute("data-copy", index_digest)

    older = _row(table, "1.3").locator("td")
    expect(older.nth(_column(table, "Tags")).get_by_role("link")).to_have_text(["1.3"])
    assert _chips(older.nth(_column(table, "Platforms"))) == ["linux/amd64", "linux/arm64"]
    expect(older.nth(_column(table, "Digest")).get_by_role("button", name="Copy digest")).to_have_attribute(
        "data-copy", older_digest
    )
    screenshot(page, "tags-demo-webapp")
    _assert_console_clean(page)


def test_the_copy_button_puts_the_full_index_digest_on_the_clipboard(
    page, login, live_server, demo_registry, demo_registry_server, screenshot
):
    index_digest = _digest(demo_registry_server, "demo/webapp", "1.4")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.clock.install()  # the page's timers under the test's control: "copied" lasts 1.2 s of page time
    login(page)
    _open(page, f"{live_server.url}/registries/demo/r/demo/webapp/")
    page.clock.pause_at(datetime.datetime.now() + datetime.timedelta(seconds=10))
    copy = _row(page.locator("table.tags"), "1.4").get_by_role("button", name="Copy digest")
    copy.click()
    expect(copy).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == index_digest
    screenshot(page, "tags-demo-webapp-copied")
    page.clock.run_for(1000)
    expect(copy).to_have_text("copied")
    page.clock.run_for(300)
    expect(copy).to_have_text("copy")
    _assert_console_clean(page)


def test_the_webapp_tag_page_shows_platforms_attestations_raw_manifest_and_commands(
    page, login, live_server, demo_registry, demo_registry_server, screenshot
):
    with demo_registry_server.client() as client:
        index = client.get_manifest("demo/webapp", "1.4")
    platform_digests = [d.digest for d in index.children if not d.is_attestation]
    assert len(platform_digests) == 3
    login(page)
    _open(page, f"{live_server.url}/registries/demo/r/demo/webapp/")
    page.get_by_role("link", name="1.4", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/registries/demo/r/demo/webapp/t/1.4")
    expect(page.get_by_role("heading", level=1)).to_have_text("demo/webapp:1.4")

    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Index digest")
    expect(facts.get_by_role("button", name="Copy digest")).to_have_attribute("data-copy", index.digest)
    assert _chips(facts) == ["linux/amd64", "linux/arm64", "linux/arm/v7"]

    children = page.locator("table.children")
    rows = children.locator("tbody tr")
    expect(rows).to_have_count(3)
    assert [_chips(rows.nth(i)) for i in range(3)] == [["linux/amd64"], ["linux/arm64"], ["linux/arm/v7"]]
    expect(rows.nth(0)).not_to_contain_text("variant")
    expect(rows.nth(1)).to_contain_text("variant v8")
    expect(rows.nth(2)).to_contain_text("variant v7")
    digest_col = _column(children, "Platform digest")
    assert [
        rows.nth(i).locator("td").nth(digest_col).get_by_role("button").get_attribute("data-copy") for i in range(3)
    ] == platform_digests
    # Attestations are not platforms: no unknown/unknown chip anywhere.
    expect(page.get_by_text("unknown/unknown")).to_have_count(0)

    summary = page.get_by_text("3 attestation manifests (not platforms)")
    attestation_rows = page.locator("details.attestations tbody tr")
    expect(summary).to_be_visible()
    expect(attestation_rows).to_have_count(3)
    for i in range(3):
        expect(attestation_rows.nth(i)).to_be_hidden()
    screenshot(page, "tag-demo-webapp-1.4")
    summary.click()
    for i in range(3):
        expect(attestation_rows.nth(i)).to_be_visible()
    attested = [
        attestation_rows.nth(i).locator("td").nth(1).get_by_role("button").get_attribute("data-copy") for i in range(3)
    ]
    assert sorted(attested) == sorted(platform_digests)
    screenshot(page, "tag-demo-webapp-1.4-attestations")

    same = page.get_by_text("Same digest as:")
    expect(same).to_have_text("Same digest as: latest")
    expect(same.get_by_role("link", name="latest")).to_have_attribute("href", "/registries/demo/r/demo/webapp/t/latest")

    commands = page.locator(".commands").last
    expect(commands).to_contain_text(f"docker buildx imagetools inspect {demo_registry_server.host}/demo/webapp:1.4")
    raw = page.locator("pre.raw")
    expect(raw).to_be_visible()
    assert raw.text_content() == index.raw.decode()
    _assert_console_clean(page)


def test_the_windows_list_shows_both_os_versions(page, login, live_server, demo_registry, screenshot):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/r/demo/windows-app/t/latest")
    children = page.locator("table.children")
    rows = children.locator("tbody tr")
    expect(rows).to_have_count(2)
    assert [_chips(rows.nth(i)) for i in range(2)] == [["windows/amd64"], ["windows/amd64"]]
    version_col = _column(children, "os.version")
    expect(rows.nth(0).locator("td").nth(version_col)).to_have_text("10.0.20348.2227")
    expect(rows.nth(1).locator("td").nth(version_col)).to_have_text("10.0.17763.5329")
    screenshot(page, "tag-demo-windows-app-latest")
    _assert_console_clean(page)


def test_each_single_windows_image_shows_its_own_os_version(page, login, live_server, demo_registry, screenshot):
    """Two images differing only by os.version must not look the same to a user."""
    login(page)
    for tag, version in (("ltsc2022", "10.0.20348.2227"), ("ltsc2019", "10.0.17763.5329")):
        _open(page, f"{live_server.url}/registries/demo/r/demo/windows-app/t/{tag}")
        screenshot(page, f"tag-demo-windows-app-{tag}")
        expect(page.locator("main")).to_contain_text(version)
        _assert_console_clean(page)


def test_tools_shows_arm_v7_and_arm_v6_as_separate_platforms(page, login, live_server, demo_registry, screenshot):
    login(page)
    _open(page, f"{live_server.url}/registries/demo/r/demo/tools/")
    table = page.locator("table.tags")
    row = _row(table, "latest")
    assert _chips(row.locator("td").nth(_column(table, "Platforms"))) == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
    ]
    screenshot(page, "tags-demo-tools")

    row.get_by_role("link", name="latest", exact=True).click()
    rows = page.locator("table.children tbody tr")
    expect(rows).to_have_count(4)
    assert [_chips(rows.nth(i)) for i in range(4)] == [
        ["linux/amd64"],
        ["linux/arm64"],
        ["linux/arm/v7"],
        ["linux/arm/v6"],
    ]
    expect(rows.nth(2)).to_contain_text("variant v7")
    expect(rows.nth(3)).to_contain_text("variant v6")
    screenshot(page, "tag-demo-tools-latest")
    _assert_console_clean(page)


# -- coverage ----------------------------------------------------------------------


def test_the_coverage_matrix_marks_repositories_missing_arm64(page, login, live_server, demo_registry, screenshot):
    login(page)
    _open(page, f"{live_server.url}/")
    page.get_by_role("link", name="Coverage").click()
    expect(page.get_by_role("heading", name="Platform coverage")).to_be_visible()
    table = page.locator("table.matrix")
    _expect_first_cells(table, DEMO_REPOSITORIES)
    arm64 = _column(table, "linux/arm64")
    amd64 = _column(table, "linux/amd64")
    for name in ("demo/legacy", "demo/cli"):
        cells = _row(table, name).locator("td")
        expect(cells.nth(1)).to_have_text("latest")
        expect(cells.nth(arm64)).to_have_text("✗ missing")
        expect(cells.nth(amd64)).to_have_text("✓ yes")
    for name in ("demo/webapp", "demo/tools", "username/arm64v8-test"):
        expect(_row(table, name).locator("td").nth(arm64)).to_have_text("✓ yes")
    # windows-app's list holds windows images only: both required linux platforms are missing.
    windows = _row(table, "demo/windows-app").locator("td")
    expect(windows.nth(amd64)).to_have_text("✗ missing")
    expect(windows.nth(arm64)).to_have_text("✗ missing")
    expect(windows.nth(_column(table, "windows/amd64"))).to_have_text("✓ yes")
    # A platform that is neither required nor present says so, and is not a cross.
    expect(_row(table, "demo/webapp").locator("td").nth(_column(table, "linux/arm/v6"))).to_have_text("– no")
    screenshot(page, "coverage")
    _assert_console_clean(page)


def test_the_lacking_filter_shows_only_repositories_without_the_platform_and_exports_csv(
    page, login, live_server, demo_registry, screenshot
):
    login(page)
    _open(page, f"{live_server.url}/coverage")
    page.get_by_label("Lacking").fill("linux/arm64")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("showing only repositories lacking")).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]lacking=linux%2Farm64"))
    table = page.locator("table.matrix")
    expect(table.locator("tbody tr td:first-child")).to_have_text(LACKING_ARM64)
    expect(table.get_by_role("link", name="demo/webapp", exact=True)).to_have_count(0)
    arm64 = _column(table, "linux/arm64")
    for name in LACKING_ARM64:
        expect(_row(table, name).locator("td").nth(arm64)).to_have_text("✗ missing")
    screenshot(page, "coverage-lacking-linux-arm64")

    href = page.get_by_role("link", name="CSV", exact=True).get_attribute("href")
    response = page.request.get(f"{live_server.url}/coverage{href}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers.get("content-disposition", "")
    rows = list(csv.reader(io.StringIO(response.text())))
    assert rows[0][:3] == ["repository", "tag", "digest"] and rows[0][-1] == "missing"
    assert [r[0] for r in rows[1:]] == LACKING_ARM64
    assert all("linux/arm64" in r[-1].split() for r in rows[1:])

    # The same view after a reload (no htmx): the filter survives in the address.
    page.reload()
    expect(page.get_by_label("Lacking")).to_have_value("linux/arm64")
    expect(page.locator("table.matrix tbody tr td:first-child")).to_have_text(LACKING_ARM64)
    _assert_console_clean(page)
