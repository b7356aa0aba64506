from django.urls import path

from billing import onboarding_views, views

app_name = "billing"

urlpatterns = [
    path("runs/", views.bill_run_list, name="bill_runs"),
    path("runs/<int:pk>/", views.bill_run_detail, name="bill_run"),
    path("runs/<int:pk>/direct-debit/", views.direct_debit_file, name="direct_debit"),
    path("runs/<int:pk>/direct-debit/cancel/", views.direct_debit_cancel, name="direct_debit_cancel"),
    path("runs/<int:pk>/<str:action>/", views.bill_run_action, name="bill_run_action"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("credit-notes/<int:pk>/", views.credit_note_detail, name="credit_note"),
    path("credit-notes/<int:pk>/pdf/", views.credit_note_pdf, name="credit_note_pdf"),
    path("customers/new/", onboarding_views.onboard, name="onboard"),
    path("customers/new/confirm/", onboarding_views.onboard_confirm, name="onboard_confirm"),
    path("customers/<str:reference>/lines/new/", onboarding_views.line_add_page, name="line_add"),
    path("products/", onboarding_views.product_list, name="products"),
    path("products/<int:pk>/", onboarding_views.product_detail, name="product"),
    path("customers/<str:reference>/invoices/", views.customer_invoices, name="customer_invoices"),
    path("customers/<str:reference>/resume-billing/", views.lift_billing_cease, name="lift_cease"),
    path("customers/<str:reference>/account/", views.customer_account, name="account"),
    path(
        "customers/<str:reference>/account/statement.pdf", views.customer_statement_pdf, name="statement_pdf"
    ),
    path("customers/<str:reference>/account/payments/new/", views.payment_record_page, name="payment_record"),
    path(
        "customers/<str:reference>/account/direct-debit-hold/clear/",
        views.direct_debit_hold_clear,
        name="direct_debit_hold_clear",
    ),
    path(
        "customers/<str:reference>/account/payments/<int:pk>/refund/",
        views.payment_refund_page,
        name="payment_refund",
    ),
    path(
        "customers/<str:reference>/account/payments/<int:pk>/reallocate/",
        views.payment_reallocate_page,
        name="payment_reallocate",
    ),
    path(
        "customers/<str:reference>/account/invoices/<int:pk>/write-off/",
        views.write_off_request_page,
        name="write_off_request",
    ),
    path(
        "customers/<str:reference>/account/write-offs/<int:pk>/<str:decision>/",
        views.write_off_decide_page,
        name="write_off_decide",
    ),
    path("partners/<int:pk>/dunning/", views.dunning_steps, name="dunning_steps"),
    path("partners/<int:pk>/dunning/<int:step_pk>/", views.dunning_step_edit, name="dunning_step_edit"),
    path("aged-debt/", views.aged_debt_report, name="aged_debt"),
    path("aged-debt.csv", views.aged_debt_csv, name="aged_debt_csv"),
    path("imports/", views.call_imports, name="call_imports"),
    path("imports/<int:pk>/", views.call_import_detail, name="call_import"),
    path("suspense/", views.suspense_queue, name="suspense"),
    path("bacs-reports/", views.bacs_reports, name="bacs_reports"),
    path("bacs-reports/<int:pk>/", views.bacs_report_detail, name="bacs_report"),
    path("bacs-reports/representations/", views.representation_file, name="representation_file"),
    path(
        "bacs-reports/representations/<int:pk>/",
        views.representation_file_again,
        name="representation_file_again",
    ),
    path(
        "bacs-reports/representations/<int:pk>/cancel/",
        views.representation_file_cancel,
        name="representation_file_cancel",
    ),
]
