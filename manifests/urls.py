from __future__ import annotations

from django.urls import include, path, re_path

from . import views, watch_views

urlpatterns = [
    path("healthz", views.health, name="manifests-health"),
    path("api/v1/", include("manifests.api_urls")),
    path("hooks/registry/<slug:name>", views.registry_webhook, name="manifests-webhook"),
    path("", views.registry_list, name="manifests-registry-list"),
    path("registries/new", views.registry_edit, name="manifests-registry-add"),
    path("registries/<slug:name>/edit", views.registry_edit, name="manifests-registry-edit"),
    path("registries/<slug:name>/delete", views.registry_delete, name="manifests-registry-delete"),
    path("registries/<slug:name>/scan", views.scan_start, name="manifests-scan"),
    path("registries/<slug:name>/check", views.registry_check, name="manifests-registry-check"),
    path("registries/<slug:name>/webhook-token", views.registry_webhook_token, name="manifests-registry-webhook-token"),
    path("registries/<slug:name>/", views.repository_list, name="manifests-repository-list"),
    # Repository names contain slashes: the tag part is matched from the right.
    re_path(r"^registries/(?P<name>[-\w]+)/r/(?P<repository>[a-z0-9._/-]+)/t/(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})$",
            views.tag_detail, name="manifests-tag-detail"),
    re_path(r"^registries/(?P<name>[-\w]+)/r/(?P<repository>[a-z0-9._/-]+)/m/(?P<digest>sha256:[a-f0-9]{64})$",
            views.manifest_detail, name="manifests-manifest-detail"),
    re_path(r"^registries/(?P<name>[-\w]+)/r/(?P<repository>[a-z0-9._/-]+)/$", views.tag_list,
            name="manifests-tag-list"),
    path("search", views.search, name="manifests-search"),
    path("coverage", views.coverage_matrix, name="manifests-coverage"),
    path("coverage/history", watch_views.coverage_history_page, name="manifests-coverage-history"),
    path("build/", views.builder_page, name="manifests-builder"),
    path("build/candidates", views.builder_candidates, name="manifests-builder-candidates"),
    path("build/preview", views.builder_preview, name="manifests-builder-preview"),
    path("build/push", views.builder_push, name="manifests-builder-push"),
    path("jobs/<int:job_id>/retry", views.job_retry, name="manifests-job-retry"),
    path("pushes/<int:record_id>/rollback", views.push_rollback, name="manifests-push-rollback"),
    path("events/", watch_views.event_list, name="manifests-event-list"),
    path("channels/", watch_views.channel_list, name="manifests-channel-list"),
    path("channels/<int:channel_id>/test", watch_views.channel_test, name="manifests-channel-test"),
    path("channels/<int:channel_id>/delete", watch_views.channel_delete, name="manifests-channel-delete"),
    path("jobs/", views.job_list, name="manifests-job-list"),
    path("jobs/<int:job_id>/", views.job_detail, name="manifests-job-detail"),
]
