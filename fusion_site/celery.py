"""The Celery app. Settings live in Django settings under the CELERY namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fusion_site.settings")

app = Celery("fusion_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
