from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("my-account/", views.my_account, name="my_account"),
    path("account/two-factor/", views.otp_verify, name="otp_verify"),
    path("account/two-factor/enrol/", views.otp_enrol, name="otp_enrol"),
    path("account/two-factor/recovery-codes/", views.recovery_codes_renew, name="recovery_codes"),
    path("customers/<str:reference>/", views.site_details_view, name="site_details"),
    path("customers/<str:reference>/reveal/", views.reveal, name="reveal"),
    path(
        "customers/<str:reference>/contacts/<int:contact_id>/edit/", views.contact_edit, name="contact_edit"
    ),
    path("customers/<str:reference>/contacts/new/", views.contact_add, name="contact_add"),
    path("customers/<str:reference>/sites/new/", views.site_add, name="site_add"),
    path("customers/<str:reference>/sites/<int:site_id>/edit/", views.site_edit, name="site_edit"),
    path("customers/<str:reference>/orders/new/", views.order_create, name="order_create"),
]
