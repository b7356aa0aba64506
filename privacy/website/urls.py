"""The public website, under /site/: the site root "/" is the staff home, which stays where it is."""

from django.urls import path

from privacy.website import views

app_name = "website"

urlpatterns = [
    path("", views.home, name="home"),
    path("privacy-notice/", views.privacy_notice, name="privacy_notice"),
    path("privacy-notice/v<int:version>/", views.privacy_notice, name="privacy_notice_version"),
    path("contact/", views.contact, name="contact"),
    path("mailing-list/", views.mailing_list, name="mailing_list"),
    path("mailing-list/confirm/<str:token>/", views.mailing_list_confirm, name="mailing_list_confirm"),
    path(
        "mailing-list/unsubscribe/<str:token>/",
        views.mailing_list_unsubscribe,
        name="mailing_list_unsubscribe",
    ),
    path("jobs/apply/", views.job_apply, name="job_apply"),
    path("privacy-request/", views.privacy_request, name="privacy_request"),
    path("privacy-request/verify/<str:token>/", views.privacy_request_verify, name="privacy_request_verify"),
    path("cookies/", views.cookies, name="cookies"),
    path("cookies/consent/", views.cookie_consent, name="cookie_consent"),
]
