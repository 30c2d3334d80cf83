"""Routes of the JSON API, included under `api/v1/` by manifests/urls.py."""

from __future__ import annotations

from django.urls import path, re_path

from . import base, inventory, lists, rules, watch

urlpatterns = [
    # <str:...>, not <slug:...>: a malformed name reaches the view and gets a JSON 404.
    path("registries/<str:name>/repositories", inventory.repository_list, name="manifests-api-repository-list"),
    # Repository names hold slashes, tags never do: the greedy group splits at the last /tags/.
    re_path(r"^registries/(?P<name>[^/]+)/repositories/(?P<repository>.+)/tags/(?P<tag>[^/]+)$", inventory.tag_detail,
            name="manifests-api-tag-detail"),
    path("coverage", inventory.coverage, name="manifests-api-coverage"),
    path("coverage/history", watch.coverage_history, name="manifests-api-coverage-history"),
    path("jobs/<int:job_id>", inventory.job_detail, name="manifests-api-job-detail"),
    path("lists", lists.list_create, name="manifests-api-list-create"),
    path("rules", rules.rule_list, name="manifests-api-rule-list"),
    path("rules/<int:rule_id>", rules.rule_detail, name="manifests-api-rule-detail"),
    path("rules/<int:rule_id>/dry-run", rules.rule_dry_run, name="manifests-api-rule-dry-run"),
    path("rules/<int:rule_id>/apply", rules.rule_apply, name="manifests-api-rule-apply"),
    path("promotions", rules.promotion_create, name="manifests-api-promotion-create"),
    path("channels", watch.channels, name="manifests-api-channels"),
    path("events", watch.events, name="manifests-api-events"),
    # Last: anything else under api/v1/ answers JSON too.
    re_path(r"^", base.unknown, name="manifests-api-unknown"),
]
