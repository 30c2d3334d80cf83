from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from manifests import metrics, oidc

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics, name="metrics"),
    # OpenID Connect sign-in (404 unless configured); the names are mozilla-django-oidc's.
    path("oidc/authenticate/", oidc.authenticate, name="oidc_authentication_init"),
    path("oidc/callback/", oidc.callback, name="oidc_authentication_callback"),
    path("", include("manifests.urls")),
]

# Error pages inside the site's layout.
handler403 = "manifests.views.site.error_403"
handler404 = "manifests.views.site.error_404"
handler500 = "manifests.views.site.error_500"
