"""The coverage matrix's links come from one reverse() per repository, to the same URLs reverse() gives."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from manifests.services.coverage import CoverageRow
from manifests.views.coverage import _Links

from .test_page_queries import _inventory


def test_a_tag_outside_the_urls_grammar_is_reversed_as_before():
    row = CoverageRow(repository="team/app", tag="1.0", digest="", kind="", platforms=[], missing=[], error="",
                      registry="big")
    links = _Links()
    assert links.tag_detail(row) == reverse("manifests-tag-detail", args=("big", "team/app", "1.0"))
    with pytest.raises(Exception) as raised:
        reverse("manifests-tag-detail", args=("big", "team/app", ".hidden"))
    with pytest.raises(type(raised.value)):
        links.tag_detail(CoverageRow(**{**row.__dict__, "tag": ".hidden"}))


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["registry=big&newest=5", "registry=%2A&newest=3"])
def test_every_link_of_the_matrix_is_what_reverse_gives(client, redis_server, query):
    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=5, tags=6)
    page = client.get(f"/coverage?{query}").content.decode()
    rows = re.findall(r'<td><a href="([^"]+)">(team/app\d+)</a></td>\s*<td><a href="([^"]+)">([^<]+)</a>', page)
    assert len(rows) >= 15
    for list_url, repository, tag_url, tag in rows:
        assert list_url == reverse("manifests-tag-list", args=("big", repository))
        assert tag_url == reverse("manifests-tag-detail", args=("big", repository, tag))


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["registry=big", "registry=%2A&newest=3"])
def test_the_matrix_rows_escape_what_the_registry_said(client, redis_server, query):
    """The rows are written in Python (views.coverage._coverage_line): a scan error, which quotes the
    registry, is shown as text, and each row still has its cells and its signed column."""
    from manifests.models import Tag

    client.force_login(User.objects.create_superuser("root"))
    _inventory(repositories=2, tags=2)
    Tag.objects.filter(name="latest").update(error='<script>alert("x")</script> & more')
    page = client.get(f"/coverage?{query}").content.decode()
    assert "<script>alert" not in page
    assert 'error: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more</span>' in page
    rows = re.findall(r"<tr>\s*(.*?)</tr>", page.split("<tbody>")[1], re.S)
    assert rows and all(row.count('<td class="cell ') == 3 and '<td class="signed"><span class="muted">no</span>'
                        in row for row in rows)
