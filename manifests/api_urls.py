"""Routes of the JSON API, included under `api/v1/` by manifests/urls.py."""

from __future__ import annotations

from django.urls import path, re_path

from . import api, watch_api

urlpatterns = [
    # <str:...>, not <slug:...>: a malformed name reaches the view and gets a JSON 404.
    path("registries/<str:name>/repositories", api.repository_list, name="manifests-api-repository-list"),
    # Repository names hold slashes, tags never do: the greedy group splits at the last /tags/.
    re_path(r"^registries/(?P<name>[^/]+)/repositories/(?P<repository>.+)/tags/(?P<tag>[^/]+)$", api.tag_detail,
            name="manifests-api-tag-detail"),
    path("coverage", api.coverage, name="manifests-api-coverage"),
    path("coverage/history", watch_api.coverage_history, name="manifests-api-coverage-history"),
    path("jobs/<int:job_id>", api.job_detail, name="manifests-api-job-detail"),
    path("lists", api.list_create, name="manifests-api-list-create"),
    path("channels", watch_api.channels, name="manifests-api-channels"),
    path("events", watch_api.events, name="manifests-api-events"),
    # Last: anything else under api/v1/ answers JSON too.
    re_path(r"^", api.unknown, name="manifests-api-unknown"),
]
