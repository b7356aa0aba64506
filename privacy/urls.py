from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("data-map/", views.data_map_view, name="data_map"),
    path("data-map.csv", views.data_map_csv, name="data_map_csv"),
    path("customers/<str:reference>/erasure-preview/", views.erasure_preview_view, name="erasure_preview"),
]
