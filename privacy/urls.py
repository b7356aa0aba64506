from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("my-data/", views.my_data, name="my_data"),
    path("customers/<str:reference>/exports/", views.customer_exports, name="customer_exports"),
    path("exports/download/<str:token>/", views.export_download, name="export_download"),
]
