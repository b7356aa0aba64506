from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("runs/", views.bill_run_list, name="bill_runs"),
    path("runs/<int:pk>/", views.bill_run_detail, name="bill_run"),
    path("runs/<int:pk>/direct-debit/", views.direct_debit_file, name="direct_debit"),
    path("runs/<int:pk>/direct-debit/cancel/", views.direct_debit_cancel, name="direct_debit_cancel"),
    path("runs/<int:pk>/<str:action>/", views.bill_run_action, name="bill_run_action"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("credit-notes/<int:pk>/", views.credit_note_detail, name="credit_note"),
    path("customers/<str:reference>/invoices/", views.customer_invoices, name="customer_invoices"),
    path("customers/<str:reference>/resume-billing/", views.lift_billing_cease, name="lift_cease"),
    path("imports/", views.call_imports, name="call_imports"),
    path("imports/<int:pk>/", views.call_import_detail, name="call_import"),
    path("suspense/", views.suspense_queue, name="suspense"),
]
