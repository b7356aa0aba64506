from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<int:pk>/", views.request_detail, name="request"),
    path("requests/<int:pk>/<str:action>/", views.request_action, name="request_action"),
    path("register.csv", views.register_download, name="register"),
    path("my-requests/", views.my_requests, name="my_requests"),
    path("my-account/access-report/", views.my_access_report, name="my_access_report"),
    path("customers/<str:reference>/access-report/", views.access_report_view, name="access_report"),
    path("verify/", views.verify_identity, name="verify_identity"),
    path("data-map/", views.data_map_view, name="data_map"),
    path("data-map.csv", views.data_map_csv, name="data_map_csv"),
    path("customers/<str:reference>/erasure-preview/", views.erasure_preview_view, name="erasure_preview"),
    path("my-data/", views.my_data, name="my_data"),
    path("customers/<str:reference>/exports/", views.customer_exports, name="customer_exports"),
    path("exports/download/<str:token>/", views.export_download, name="export_download"),
    path("retention/", views.retention_overview, name="retention"),
    path("retention/holds/", views.legal_hold_set_view, name="legal_hold_set"),
    path("retention/holds/<int:pk>/lift/", views.legal_hold_lift_view, name="legal_hold_lift"),
    path("retention/policies/<int:pk>/", views.retention_policy_edit, name="retention_policy_edit"),
    path("breaches/", views.breach_register, name="breaches"),
    path("breaches/new/", views.breach_new, name="breach_new"),
    path("breaches/<int:pk>/", views.breach_detail, name="breach"),
    path("breaches/<int:pk>/edit/", views.breach_edit, name="breach_edit"),
    path("breaches/<int:pk>/decide/<str:what>/", views.breach_decide, name="breach_decide"),
    path("breaches/<int:pk>/affected/", views.breach_affected, name="breach_affected"),
    path("breaches/<int:pk>/affected.csv", views.breach_affected_csv, name="breach_affected_csv"),
    path("breaches/<int:pk>/report/", views.breach_report, name="breach_report"),
]
