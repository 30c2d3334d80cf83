"""Coverage with several tags per repository, from the form, on a phone and a wide screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [390, 1440])
def test_the_form_shows_the_newest_n_tags_of_each_repository_in_place(page, login, live_server, demo_registry,
                                                                        width):
    from manifests.models import Repository

    login(page)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/coverage")
    rows = page.locator("table.matrix tbody tr")
    expect(rows).to_have_count(Repository.objects.count())  # one tag a repository by default
    webapp = Repository.objects.get(name="demo/webapp")
    assert webapp.tags.count() >= 3
    page.get_by_label("Newest tags").fill("3")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**newest=3**")  # htmx keeps the address, so the view can be shared
    expected = sum(min(3, r.tags.count()) for r in Repository.objects.all())
    expect(rows).to_have_count(expected)
    expect(rows.filter(has_text="demo/webapp")).to_have_count(3)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_a_newest_above_the_cap_is_marked_at_its_field(page, login, live_server, demo_registry):
    login(page)
    page.goto(f"{live_server.url}/coverage?newest=500")
    field = page.get_by_label("Newest tags")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description("newest is a whole number from 1 to 20 (tags per repository)")
