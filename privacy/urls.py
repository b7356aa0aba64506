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
    path("processors/", views.processors, name="processors"),
    path("processors/new/", views.processor_new, name="processor_new"),
    path("processors/<int:pk>/", views.processor_detail, name="processor"),
    path("processors/<int:pk>/edit/", views.processor_edit, name="processor_edit"),
    path("assessments/", views.assessments, name="assessments"),
    path("assessments/new/", views.assessment_new, name="assessment_new"),
    path("assessments/<int:pk>/", views.assessment_detail, name="assessment"),
    path("assessments/<int:pk>/edit/", views.assessment_edit, name="assessment_edit"),
    path("assessments/<int:pk>/risks/new/", views.assessment_risk, name="assessment_risk_new"),
    path("assessments/<int:pk>/risks/<int:risk_pk>/", views.assessment_risk, name="assessment_risk"),
    path("assessments/<int:pk>/sign-off/", views.assessment_sign_off, name="assessment_sign_off"),
]
