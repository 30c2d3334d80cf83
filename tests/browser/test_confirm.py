"""Nothing rewrites a tag without asking: rollback asks in a <dialog> naming the tag and both digests, and the
server refuses a rollback that does not carry the confirmation. History marks rollbacks and one current row."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_a11y import AXE, AXE_RUN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history(demo_registry):
    """Three pushes of demo/webapp:latest: 1.4's list, then 1.3's, then a rollback to 1.4's (what it holds now)."""
    from manifests.models import Job, PushRecord, Tag

    old = Tag.objects.get(repository__name="demo/webapp", name="1.3").digest
    now = Tag.objects.get(repository__name="demo/webapp", name="latest").digest
    assert old != now

    def record(old_digest: str, new_digest: str, kind: str) -> PushRecord:
        job = Job.objects.create(kind=kind, registry=demo_registry, target="demo/webapp:latest", status="succeeded")
        return PushRecord.objects.create(registry=demo_registry, repository="demo/webapp", tag="latest",
                                         old_digest=old_digest, new_digest=new_digest, media_type="x", raw=b"{}",
                                         job=job)

    first = record("", now, Job.KIND_PUSH)
    second = record(now, old, Job.KIND_PUSH)
    third = record(old, now, Job.KIND_ROLLBACK)
    # Newest first, as the page lists them.
    PushRecord.objects.filter(pk=first.pk).update(created_at="2026-01-01T10:00:00Z")
    PushRecord.objects.filter(pk=second.pk).update(created_at="2026-01-02T10:00:00Z")
    PushRecord.objects.filter(pk=third.pk).update(created_at="2026-01-03T10:00:00Z")
    return {"old": old, "now": now, "records": [third, second, first]}


def test_history_labels_rollbacks_and_marks_exactly_one_row_current(page, login, live_server, history, screenshot):
    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/t/latest")
    rows = page.locator("table.history tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("table.history").get_by_text("current", exact=True)).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("current")
    expect(rows.nth(0)).to_contain_text("rollback")
    expect(rows.nth(1)).not_to_contain_text("rollback")
    expect(rows.nth(2)).to_contain_text("same as now")
    expect(page.get_by_role("button", name="Roll back to this")).to_have_count(1)
    screenshot(page, "history-one-current")


def test_roll_back_asks_in_a_dialog_naming_the_tag_and_both_digests(page, login, live_server, history, screenshot):
    from manifests.models import Job

    login(page)
    page.goto(f"{live_server.url}/registries/demo/r/demo/webapp/t/latest")
    before = Job.objects.filter(kind=Job.KIND_ROLLBACK).count()
    page.get_by_role("button", name="Roll back to this").click()
    dialog = page.get_by_role("dialog", name="Roll back demo/webapp:latest?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(history["now"])
    expect(dialog).to_contain_text(history["old"])
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.evaluate(AXE.read_text())
    assert page.evaluate(AXE_RUN) == []  # the open dialog too: no serious or critical axe violation
    screenshot(page, "rollback-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Job.objects.filter(kind=Job.KIND_ROLLBACK).count() == before

    page.get_by_role("button", name="Roll back to this").click()
    dialog.get_by_role("button", name="Roll back latest").click()
    page.wait_for_url("**/jobs/*/")
    job = Job.objects.filter(kind=Job.KIND_ROLLBACK).latest("pk")
    assert job.params["record"] == history["records"][1].pk


def test_the_server_refuses_a_rollback_without_the_confirmation(page, login, live_server, history, client):
    """A post straight to the rollback URL (no dialog) rewrites nothing and asks instead."""
    from django.contrib.auth.models import User

    from manifests.models import Job

    target = history["records"][1]
    client.force_login(User.objects.create_superuser("direct", "direct@example.com", "x"))
    before = Job.objects.filter(kind=Job.KIND_ROLLBACK).count()
    response = client.post(f"/pushes/{target.pk}/rollback")
    assert response.status_code == 400
    assert b"Nothing was changed yet" in response.content
    response = client.post(f"/pushes/{target.pk}/rollback", {"confirm": history["now"]})  # the wrong digest
    assert response.status_code == 400
    assert Job.objects.filter(kind=Job.KIND_ROLLBACK).count() == before
    response = client.post(f"/pushes/{target.pk}/rollback", {"confirm": target.new_digest})
    assert response.status_code == 302
    assert Job.objects.filter(kind=Job.KIND_ROLLBACK).count() == before + 1
