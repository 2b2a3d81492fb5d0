from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config.auth import ThrottledLoginView
from config.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # One sign-in page, the throttled one: the admin's own would take passwords unthrottled.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("inference/", include("inference.urls")),
    path("scoring/", include("annotation.urls")),
    path("rating/", include("ratings.urls")),
    path("releases/", include("releases.urls")),
    path("", include("core.urls")),
    path("", include("datasets.urls")),
]
