"""Routes of the JSON API, included under `api/v1/` by manifests/urls.py."""

from __future__ import annotations

from django.urls import path, re_path

from . import api, rules_api, watch_api

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
    path("rules", rules_api.rule_list, name="manifests-api-rule-list"),
    path("rules/<int:rule_id>", rules_api.rule_detail, name="manifests-api-rule-detail"),
    path("rules/<int:rule_id>/dry-run", rules_api.rule_dry_run, name="manifests-api-rule-dry-run"),
    path("rules/<int:rule_id>/apply", rules_api.rule_apply, name="manifests-api-rule-apply"),
    path("promotions", rules_api.promotion_create, name="manifests-api-promotion-create"),
    path("channels", watch_api.channels, name="manifests-api-channels"),
    path("events", watch_api.events, name="manifests-api-events"),
    # Last: anything else under api/v1/ answers JSON too.
    re_path(r"^", api.unknown, name="manifests-api-unknown"),
]
