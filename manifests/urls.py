from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.health, name="manifests-health"),
    path("", views.registry_list, name="manifests-registry-list"),
    path("registries/<slug:name>/", views.repository_list, name="manifests-repository-list"),
    path("jobs/<int:job_id>/", views.job_detail, name="manifests-job-detail"),
]
