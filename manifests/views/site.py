"""Health, the login lockout page and the error pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.decorators.http import require_GET


def _error_page(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    context = {"status": status, "title": title, "text": text}
    if status == 500:
        # Without the request's context: no session or user lookup, the database may be what failed.
        return HttpResponse(loader.render_to_string("error.html", context), status=500)
    return render(request, "error.html", context, status=status)


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a locked-out login: the login page, saying why and for how long."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    # Unbound: validating it would try to authenticate again.
    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})
    return render(request, "registration/login.html", {
        "form": form, "next": request.POST.get("next", ""),
        "locked_out": f"Too many failed logins for this account from this address: "
                      f"try again in {minutes} minutes, or ask an admin."}, status=429)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, 403, "Not allowed",
                       str(exception) if exception and str(exception) else "Your account may not do this.")


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, 404, "Not found",
                       "Nothing is stored at this address: the registry, repository, tag or digest may be gone, "
                       "or not scanned yet.")


def error_500(request: HttpRequest) -> HttpResponse:
    return _error_page(request, 500, "Something went wrong",
                       "The dashboard failed to show this page. The error is logged; try again, or go back.")
