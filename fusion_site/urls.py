from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "Fusion back office"
admin.site.site_title = "Fusion back office"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.urls")),
    path("privacy/", include("privacy.urls")),
    path("", include("accounts.urls")),
]
