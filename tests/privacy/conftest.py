import datetime

import pytest

from accounts.models import Role
from privacy.models import PrivacyRequest
from privacy.services import requests as services


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def second_dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def support(make_user):
    return make_user(Role.SUPPORT_AGENT)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run what a service queues on commit (emails, tasks): the test transaction never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def today(monkeypatch):
    """Set the services' idea of today: ``today(date)``."""

    def set_today(day: datetime.date) -> None:
        monkeypatch.setattr(services, "_today", lambda: day)

    return set_today


def receive(actor, *, kind=PrivacyRequest.Kind.ACCESS, **fields) -> PrivacyRequest:
    fields.setdefault("channel", PrivacyRequest.Channel.EMAIL)
    fields.setdefault("details", "Please send me a copy of my data.")
    return services.privacy_request_receive(kind=kind, actor=actor, **fields)
