from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("manifests.urls")),
]

# Error pages inside the site's layout.
handler403 = "manifests.views.error_403"
handler404 = "manifests.views.error_404"
handler500 = "manifests.views.error_500"
