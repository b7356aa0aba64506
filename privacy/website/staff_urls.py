from django.urls import path

from privacy.website import staff_views

app_name = "website_staff"

urlpatterns = [
    path("submissions/", staff_views.submissions, name="submissions"),
    path("submissions/<int:pk>/", staff_views.submission_detail, name="submission"),
    path("submissions/<int:pk>/cv/", staff_views.submission_cv, name="submission_cv"),
    path("submissions/<int:pk>/decision/", staff_views.submission_decision, name="submission_decision"),
    path("mailing-list/export/", staff_views.mailing_list_export, name="mailing_list_export"),
    path("notices/", staff_views.notices, name="notices"),
    path("notices/new/", staff_views.notice_new, name="notice_new"),
    path("notices/<int:pk>/edit/", staff_views.notice_edit, name="notice_edit"),
    path("notices/<int:pk>/publish/", staff_views.notice_publish, name="notice_publish"),
]
