"""Fixtures of the hostile-registry tests (tests/faults/test_hostile_*.py)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.faults.hostile_checks")

from tests.faults import hostile_checks as checks  # noqa: E402 (after the rewrite hook)
from tests.faults.hostile.server import HostileRegistry  # noqa: E402


@pytest.fixture(scope="session")
def figures():
    """Every case's figures. Session-wide: pytest-django runs database tests first, then transactional
    ones, then the rest, so a module-scoped dict would be made anew each time the run comes back here."""
    cases: dict[str, dict] = {}
    return cases


@pytest.fixture
def hostile():
    server = HostileRegistry(hang_seconds=5).start()
    yield server
    server.stop()


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer"))
    return client


@pytest.fixture
def rest_checked(hostile, viewer, figures, request):
    """How every case ends: each page about the registry answers (`checks.pages_answer`, the answers
    returned), and the good tags of `repositories` were stored exactly as served (`checks.check_good`)."""
    def check(registry, *repositories: str, client=None) -> dict[str, str]:
        answers = checks.pages_answer(viewer, registry)
        checks.check_good(figures, request, hostile, registry, *repositories, client=client)
        return answers
    return check
