"""A real browser (Debian's chromium, driven by Playwright) against the live test server.

`playwright install` cannot download browsers here, so the system chromium is
launched by path. Each test gets a fresh browser context, so no cookie or
storage leaks from one test to the next.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from manifests.management.commands.seed_demo import seed
from manifests.stack.distribution import RunningRegistry, registry_start

# Assertions wait for htmx round trips to a live server and a worker: 5 s (the
# default) is short on a loaded machine.
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME, PASSWORD = "browser-admin", "browser-admin-password"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item, so the `page` fixture knows at
    # teardown whether the test failed and takes a screenshot for the record.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an asyncio loop running in this thread, and
    # Django then refuses ORM calls from it (SynchronousOnlyOperation). The
    # calls are in fact synchronous: Playwright's documented way out for Django.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser_artifacts(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "browser"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def screenshot(browser_artifacts: Path) -> Callable[[Page, str], Path]:
    """`screenshot(page, "name")` saves a full-page PNG as test-artifacts/browser/name.png."""

    def take(page: Page, name: str) -> Path:
        path = browser_artifacts / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def page(browser: Browser, request, browser_artifacts: Path) -> Iterator[Page]:
    """A page in a context of its own, recording what a user would not see but a developer should.

    page.console_errors: console messages of type error, and uncaught page errors
    (a CSP violation shows up here). page.bad_responses: every response with a
    status of 400 or more, as "STATUS URL".
    """
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.console_errors = []
    page.bad_responses = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location or {}
            page.console_errors.append(f"console: {message.text} ({location.get('url', '')})")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            page.bad_responses.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(f"pageerror: {error}"))
    page.on("response", on_response)
    yield page
    report = getattr(request.node, "report_call", None)
    failed_shot = browser_artifacts / f"FAILED-{re.sub(r'[^A-Za-z0-9._-]+', '-', request.node.name)}.png"
    if report is not None and report.failed:
        try:
            page.screenshot(path=str(failed_shot), full_page=True)
        except Exception:  # the page may be gone with the failure; the report matters more
            pass
    else:
        failed_shot.unlink(missing_ok=True)  # a stale one from an earlier run would mislead
    context.close()


@pytest.fixture
def login(live_server, django_user_model, settings) -> Callable[[Page], None]:
    """`login(page)`: make a user and log in through the login form, as a person would."""
    # The default PBKDF2 costs ~0.8 s per hash, twice per login; Django's testing
    # docs suggest a fast hasher. The live server runs in this process, so it
    # sees the override.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    def log_in(page: Page) -> None:
        # A superuser for now: the browsing pages only need login; permissions
        # are another test's business.
        django_user_model.objects.create_superuser(USERNAME, f"{USERNAME}@example.com", PASSWORD)
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")

    return log_in


@pytest.fixture(scope="module")
def demo_registry_server(tmp_path_factory) -> Iterator[RunningRegistry]:
    """A Docker Distribution holding the demo images, pushed once per module."""
    running = registry_start(tmp_path_factory.mktemp("browser-registry"), "anonymous")
    try:
        with running.client() as client:
            seed(client)
        yield running
    finally:
        running.shutdown()


@pytest.fixture
def demo_registry(demo_registry_server: RunningRegistry, redis_server, live_server):
    """The demo registry as the dashboard knows it after one scan: rows made inside the test.

    Transactional tests flush the database after each test, so the rows (and
    the scan, quick and in-process) are made again for each one. Redis runs
    because a dashboard without its queue shows a warning banner on every page,
    which is not what a new user sees.
    """
    from manifests.jobs import job_create, job_run
    from manifests.models import Registry

    registry = Registry.objects.create(name="demo", url=demo_registry_server.url, insecure=True)
    job = job_create(kind="scan", registry=registry, target=registry.name, params={})
    job_run(inline=True, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    registry.refresh_from_db()
    return registry
