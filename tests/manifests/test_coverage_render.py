"""The coverage matrix writes its cells and links without a template node per cell, to the same bytes."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.urls import reverse

from manifests.services.coverage import CoverageRow
from manifests.views.coverage import _coverage_cell, _coverage_cells_html, _Links

from .test_page_queries import _inventory

# What the table's template wrote per cell before the cells were joined in the view.
_CELLS = Template('{% for state, title, text in cells %}<td class="cell {{ state }}" title="{{ title }}">'
                  "{{ text }}</td>{% endfor %}")


@pytest.mark.parametrize("tag", ["1.0", "<b>&'\"x", "v1.2.3-rc.1_b"])
def test_the_cells_are_what_the_template_wrote_escapes_included(tag):
    row = CoverageRow(repository="team/app", tag=tag, digest="", kind="index", platforms=["linux/amd64"],
                      missing=["linux/arm64"], error="", registry="big")
    columns = ["linux/amd64", "linux/arm64", "linux/s390x<&>"]
    expected = _CELLS.render(Context({"cells": [_coverage_cell(c, row) for c in columns]}))
    assert _coverage_cells_html(columns, row) == expected


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
