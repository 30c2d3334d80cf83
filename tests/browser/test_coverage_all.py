"""Coverage across every registry at once, errors inside the swapped region."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_registries(demo_registry, demo_registry_server):
    """The demo registry twice, as two registries of the dashboard (a mirror), each scanned."""
    from manifests.jobs import job_create, job_run
    from manifests.models import Registry

    mirror = Registry.objects.create(name="mirror", url=demo_registry_server.url, insecure=True,
                                     required_platforms="linux/amd64")
    job = job_create(kind="scan", registry=mirror, target=mirror.name, params={})
    job_run(inline=True, job_id=job.pk)
    return demo_registry, mirror


def test_all_registries_show_in_one_matrix_with_a_registry_column_and_their_own_requirements(
    page, login, live_server, two_registries, screenshot
):
    login(page)
    page.goto(f"{live_server.url}/coverage")
    page.get_by_label("Registry").select_option("*")
    page.get_by_role("button", name="Show").click()
    table = page.locator("table.matrix")
    expect(table.locator("thead th").first).to_have_text(re.compile(r"^Registry( [↕↑↓])?$"))  # the sort arrow comes with JS
    rows = table.locator("tbody tr")
    expect(rows.filter(has_text="mirror")).to_have_count(7)
    expect(rows.filter(has_text="demo/cli").first.locator("td").first).to_have_text("demo")
    # Each registry keeps its own required platforms: arm64 is missing in demo, merely absent in mirror.
    headers = [h.strip(" ↕↑↓\n") for h in table.locator("thead th").all_inner_texts()]
    arm64 = headers.index("linux/arm64")
    cli = {row.locator("td").first.inner_text(): row.locator("td").nth(arm64).inner_text()
           for row in rows.filter(has_text="demo/cli").all()}
    assert cli == {"demo": "✗ missing", "mirror": "– no"}, cli
    link = rows.filter(has_text="mirror").filter(has_text="demo/cli").get_by_role("link", name="demo/cli")
    expect(link).to_have_attribute("href", "/registries/mirror/r/demo/cli/")
    screenshot(page, "coverage-all-registries")
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON", exact=True).click()
    with open(download.value.path()) as handle:
        data = json.load(handle)
    assert {row["registry"] for row in data["rows"]} == {"demo", "mirror"}


def test_a_bad_required_platform_is_reported_inside_the_swapped_region(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/coverage")
    page.get_by_label("Required").fill("linux")
    page.get_by_role("button", name="Show").click()
    alert = page.locator("#coverage").get_by_role("alert")
    expect(alert).to_contain_text("'linux' is not a platform")
    expect(page.get_by_label("Required")).to_have_value("linux")
