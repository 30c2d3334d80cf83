from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .models import Job, Registry


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
@login_required
def registry_list(request: HttpRequest) -> HttpResponse:
    return render(request, "manifests/registry_list.html", {"registries": Registry.objects.all()})


@require_GET
@login_required
def repository_list(request: HttpRequest, name: str) -> HttpResponse:
    registry = get_object_or_404(Registry, name=name)
    return render(request, "manifests/repository_list.html", {"registry": registry})


@require_GET
@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    return render(request, "manifests/job_detail.html", {"job": job})
