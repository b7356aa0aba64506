from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from fusion_site import health

# Error pages in the product's layout (fusion_site/error_views.py); used whenever DEBUG is off.
handler403 = "fusion_site.error_views.permission_denied"
handler404 = "fusion_site.error_views.page_not_found"
handler500 = "fusion_site.error_views.server_error"

admin.site.site_header = "Fusion back office"
admin.site.site_title = "Fusion back office"

urlpatterns = [
    # Probes for the proxy, systemd and CI (fusion_site/health.py): no login, no second factor, no cache.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.urls")),
    path("privacy/", include("privacy.urls")),
    # The public website lives under /site/ because "/" is the staff home (see privacy/website/urls.py).
    path("site/", include("privacy.website.urls")),
    path("privacy/website/", include("privacy.website.staff_urls")),
    path("", include("accounts.urls")),
]
