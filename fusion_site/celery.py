"""The Celery app. Settings live in Django settings under the CELERY namespace."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fusion_site.settings")

app = Celery("fusion_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def keep_django_logging(**kwargs: Any) -> None:
    """Workers and beat keep Django's LOGGING (redaction, request ids, JSON lines in production) instead
    of installing Celery's handlers: a receiver of this signal tells Celery logging is configured."""
