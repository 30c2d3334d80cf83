"""The coverage tag pattern: a shell glob matched by the database in linear time, and capped.

The pattern runs in SQL over the stored inventory, so these tests use stored
rows and no registry: what is under test is the database's matcher.
"""

from __future__ import annotations

import re
import time
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from manifests.models import Registry, Repository, Tag
from manifests.services.coverage import PATTERN_MAX_LENGTH, coverage_rows

pytestmark = pytest.mark.django_db

# `*a` twelve times then `*b`: as a regular expression (`^.*a.*a...b$`) Python's
# backtracking `re`, which runs SQLite's REGEXP, held the web process for more
# than 20 s against a single tag of forty `a`s.
PATHOLOGICAL = "*a" * 12 + "*b"


@pytest.fixture
def registry() -> Registry:
    return Registry.objects.create(name="globs", url="http://127.0.0.1:9", insecure=True)


@pytest.fixture
def viewer(client):
    client.force_login(User.objects.create_user("vera"))
    return client


def _repository(registry: Registry, name: str, *tags: str) -> Repository:
    repository = Repository.objects.create(registry=registry, name=name)
    Tag.objects.bulk_create([Tag(repository=repository, name=tag, digest="sha256:" + "a" * 64, kind="image",
                                 platforms=["linux/amd64"]) for tag in tags])
    return repository


def _chosen(registry: Registry, pattern: str) -> dict[str, str]:
    repositories = coverage_rows(registry=registry, pattern=pattern)
    tags = dict(Tag.objects.filter(pk__in=[r.chosen_tag for r in repositories]).values_list("pk", "name"))
    return {r.name: tags[r.chosen_tag] for r in repositories}


def test_the_pathological_pattern_answers_at_once_and_correctly(registry):
    # Tags as long as the grammar allows, 300 of them: the regex took > 20 s for one tag of 40.
    _repository(registry, "long/a", *("a" * (128 - len(str(n))) + str(n) for n in range(300)))
    _repository(registry, "long/b", "a" * 127 + "b", "a" * 40)
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        chosen = _chosen(registry, PATHOLOGICAL)
    elapsed = time.monotonic() - started
    assert chosen == {"long/b": "a" * 127 + "b"}
    # The database's own glob matcher, never a regular expression (Python's `re` on SQLite).
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert "REGEXP" not in sql.upper() and "~" not in sql
    assert (" GLOB " if connection.vendor == "sqlite" else " LIKE ") in sql
    # A generous bound (the query takes milliseconds): what it guards against is minutes.
    assert elapsed < 10, f"the pattern took {elapsed:.1f} s"


def test_the_pathological_pattern_answers_at_once_through_the_page_and_the_api(registry, viewer):
    _repository(registry, "long/a", "a" * 40)
    started = time.monotonic()
    page = viewer.get("/coverage", {"registry": "globs", "tag": PATHOLOGICAL})
    api = viewer.get("/api/v1/coverage", {"registry": "globs", "tag": PATHOLOGICAL})
    assert time.monotonic() - started < 10
    assert page.status_code == 200 and "Nothing to show" in page.content.decode()
    assert api.status_code == 200 and api.json()["rows"] == []


@pytest.mark.parametrize(("pattern", "expected"), [
    ("1.?", {"app": "1.4"}),              # `?` is one character
    ("1.*", {"app": "1.4.2"}),            # `*` any run, newest name first when no date
    ("1.4", {"app": "1.4"}),              # no wildcard: the name itself
    ("1_4", {"app": "1_4"}),              # `_` is literal, not LIKE's one-character wildcard
    ("1?4", {"app": "1_4"}),              # ... which `?` is (`1.4` and `1_4`: the greater name)
    ("LATEST", {}),                       # case-sensitive, on SQLite too
    ("*-rc?", {"app": "2.0-rc1"}),
    ("", {"app": "latest"}),              # no pattern: `latest` first
])
def test_a_glob_matches_as_the_shell_does(registry, pattern, expected):
    _repository(registry, "app", "latest", "1.4", "1.4.2", "1_4", "1x4x", "2.0-rc1")
    assert _chosen(registry, pattern) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("*" * (PATTERN_MAX_LENGTH + 1), f"a tag pattern is at most {PATTERN_MAX_LENGTH} characters"),
    ("1.%", "a tag pattern uses letters, digits"),
    ("[a-z]*", "a tag pattern uses letters, digits"),
    ("^v.*$", "a tag pattern uses letters, digits"),
])
def test_a_pattern_too_long_or_with_other_characters_is_refused_next_to_its_field(registry, viewer, pattern,
                                                                                   message):
    _repository(registry, "app", "latest")
    page = viewer.get("/coverage", {"registry": "globs", "tag": pattern})
    assert page.status_code == 200
    html = page.content.decode()
    field = re.search(r'<input[^>]*name="tag"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and 'aria-describedby="error-tag"' in field, "the field itself is marked"
    described = re.search(r'id="error-tag">([^<]*)<', html)
    assert described and message in unescape(described.group(1)), "the field is described by the message"
    api = viewer.get("/api/v1/coverage", {"registry": "globs", "tag": pattern})
    assert api.status_code == 400 and api["Content-Type"] == "application/json"
    assert api.json()["field"] == "tag" and api.json()["error"].startswith(message)
