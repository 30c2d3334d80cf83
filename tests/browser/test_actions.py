"""Actions update in place: Refresh, Check children, Test and Scan show their job where they were clicked."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_check_children_shows_the_job_where_it_was_clicked_without_leaving_the_page(
    page, login, live_server, demo_registry, celery_worker, screenshot
):
    login(page)
    url = f"{live_server.url}/registries/demo/r/demo/webapp/t/1.4"
    page.goto(url)
    form = page.locator("form", has=page.get_by_role("button", name="Check children"))
    form.get_by_role("button", name="Check children").click()
    status = form.get_by_role("status")
    expect(status.get_by_role("link", name=re.compile(r"^job \d+$"))).to_be_visible()
    expect(status.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(status).to_contain_text(re.compile(r"children checked, 0 missing"))
    expect(status).to_contain_text(re.compile(r"\d+(\.\d)? (ms|s)"))  # elapsed
    assert page.url == url
    screenshot(page, "inline-check-children")
    assert page.console_errors == [], page.console_errors


def test_scan_now_and_test_report_in_the_registry_row(page, login, live_server, demo_registry, celery_worker):
    login(page)
    row = page.locator("tbody tr", has=page.get_by_role("link", name="demo", exact=True))
    row.get_by_role("button", name="Test").click()
    test_status = row.locator("form", has=page.get_by_role("button", name="Test")).get_by_role("status")
    expect(test_status).to_contain_text("the registry answers", timeout=60_000)
    row.get_by_role("button", name="Scan now").click()
    scan_status = row.locator("form", has=page.get_by_role("button", name="Scan now")).get_by_role("status")
    expect(scan_status.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(scan_status).to_contain_text(re.compile(r"\d+ of \d+ repositories|\d+ tags"))
    assert page.url == f"{live_server.url}/"


def test_a_failed_job_links_back_to_what_it_was_about(page, login, live_server, demo_registry):
    from manifests.models import Job

    tag_job = Job.objects.create(kind="scan", registry=demo_registry, target="demo", status="failed",
                                 params={"repository": "demo/webapp", "tags": ["1.4"]}, error="registry error")
    repo_job = Job.objects.create(kind="scan", registry=demo_registry, target="demo", status="failed",
                                  params={"repository": "demo/webapp"}, error="registry error")
    registry_job = Job.objects.create(kind="check", registry=demo_registry, target="demo", status="failed",
                                      error="connection refused")
    login(page)
    page.goto(f"{live_server.url}/jobs/{tag_job.pk}/")
    expect(page.get_by_role("link", name="Open demo/webapp:1.4")).to_have_attribute(
        "href", "/registries/demo/r/demo/webapp/t/1.4")
    page.goto(f"{live_server.url}/jobs/{repo_job.pk}/")
    expect(page.get_by_role("link", name="Open demo/webapp", exact=True)).to_have_attribute(
        "href", "/registries/demo/r/demo/webapp/")
    push_job = Job.objects.create(kind="push", registry=demo_registry, target="demo/webapp:2.0", status="failed",
                                  params={}, error="registry error")
    page.goto(f"{live_server.url}/jobs/{push_job.pk}/")
    expect(page.get_by_text("It was about:").get_by_role("link", name="demo/webapp:2.0")).to_have_attribute(
        "href", "/registries/demo/r/demo/webapp/t/2.0")
    page.goto(f"{live_server.url}/jobs/{registry_job.pk}/")
    expect(page.get_by_role("link", name="registry demo")).to_have_attribute("href", "/registries/demo/")


def test_the_jobs_page_filters_by_kind_status_and_user_and_shows_durations(
    page, login, live_server, demo_registry, django_user_model
):
    from manifests.models import Job

    pat = django_user_model.objects.create_user("pat")
    start = timezone.now() - datetime.timedelta(minutes=5)
    Job.objects.create(kind="push", registry=demo_registry, target="demo/a:1", status="succeeded", created_by=pat,
                       started_at=start, finished_at=start + datetime.timedelta(seconds=2.5))
    Job.objects.create(kind="push", registry=demo_registry, target="demo/b:1", status="failed",
                       started_at=start, finished_at=start + datetime.timedelta(seconds=75), error="no")
    login(page)
    page.goto(f"{live_server.url}/jobs/")
    page.get_by_label("Kind").select_option("push")
    page.get_by_role("button", name="Filter").click()
    targets = page.locator("table.jobs tbody tr td:nth-child(3)")
    expect(targets).to_have_text(["demo/b:1", "demo/a:1"])
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(targets).to_have_text(["demo/a:1"])
    expect(page.locator("table.jobs tbody tr td:nth-child(7)")).to_have_text(["2.5 s"])
    page.get_by_label("Status").select_option("")
    page.get_by_label("User").select_option("pat")
    page.get_by_role("button", name="Filter").click()
    expect(targets).to_have_text(["demo/a:1"])
    page.get_by_label("User").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.jobs tbody tr", has_text="demo/b:1").locator("td:nth-child(7)")).to_have_text(
        "1 min 15 s")
