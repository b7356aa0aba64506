"""Cookie consent on the server side: the analytics tag, the anonymous record, the endpoint's guards."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from privacy.models import CookieConsentRecord
from privacy.website.views import COOKIE_CONSENT_COOKIE

pytestmark = [pytest.mark.date_sensitive, pytest.mark.django_db]

ANALYTICS_TAG = 'website/js/analytics.js" defer data-analytics'


def test_analytics_tag_is_rendered_only_when_the_cookie_says_accepted(client, notice):
    first_visit = client.get(reverse("website:home")).content.decode()
    assert ANALYTICS_TAG not in first_visit
    assert (
        'id="cookie-banner"' in first_visit
        and "hidden>" not in first_visit.split('id="cookie-banner"')[1][:300]
    )

    client.cookies[COOKIE_CONSENT_COOKIE] = "refused"
    assert ANALYTICS_TAG not in client.get(reverse("website:home")).content.decode()
    client.cookies[COOKIE_CONSENT_COOKIE] = "accepted"
    assert ANALYTICS_TAG in client.get(reverse("website:home")).content.decode()
    client.cookies[COOKIE_CONSENT_COOKIE] = "yes-please"  # anything else is no choice
    assert ANALYTICS_TAG not in client.get(reverse("website:home")).content.decode()


def test_accept_and_refuse_are_two_equal_buttons(client, notice):
    page = client.get(reverse("website:home")).content.decode()
    assert '<button type="submit" name="choice" value="accepted" class="choice">' in page
    assert '<button type="submit" name="choice" value="refused" class="choice">' in page
    assert "data-cookie-settings" in page  # the footer link that opens the banner again


def test_choice_is_recorded_anonymously_to_the_hour_and_remembered(client, notice):
    before = timezone.now()
    response = client.post(
        reverse("website:cookie_consent"),
        {"choice": "accepted"},
        HTTP_ACCEPT="application/json",
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="Test Browser",
    )
    assert response.json() == {"choice": "accepted"}
    assert response.cookies[COOKIE_CONSENT_COOKIE].value == "accepted"
    record = CookieConsentRecord.objects.get()
    assert record.choice == "accepted" and record.notice == notice
    assert record.recorded_hour == before.replace(minute=0, second=0, microsecond=0) or (
        record.recorded_hour - before.replace(minute=0, second=0, microsecond=0)
        == datetime.timedelta(hours=1)
    )
    assert (record.recorded_hour.minute, record.recorded_hour.second, record.recorded_hour.microsecond) == (
        0,
        0,
        0,
    )
    assert {field.name for field in CookieConsentRecord._meta.get_fields()} == {
        "id",
        "choice",
        "notice",
        "recorded_hour",
    }


def test_changing_the_choice_records_it_again(client, notice):
    client.post(reverse("website:cookie_consent"), {"choice": "accepted"}, HTTP_ACCEPT="application/json")
    response = client.post(reverse("website:cookie_consent"), {"choice": "refused", "next": "/site/contact/"})
    assert response.status_code == 302 and response["Location"] == "/site/contact/"
    assert list(CookieConsentRecord.objects.order_by("pk").values_list("choice", flat=True)) == [
        "accepted",
        "refused",
    ]
    assert ANALYTICS_TAG not in client.get(reverse("website:home")).content.decode()


def test_endpoint_refuses_get_bad_choices_foreign_redirects_and_missing_csrf(notice):
    client = Client(enforce_csrf_checks=True)
    assert client.get(reverse("website:cookie_consent")).status_code == 405
    assert client.post(reverse("website:cookie_consent"), {"choice": "accepted"}).status_code == 403

    page = client.get(reverse("website:home"))
    token = page.cookies["csrftoken"].value
    bad = client.post(
        reverse("website:cookie_consent"),
        {"choice": "maybe", "csrfmiddlewaretoken": token},
        HTTP_ACCEPT="application/json",
    )
    assert bad.status_code == 400
    assert "Cookie choice:" in bad.json()["errors"]["choice"][0]
    away = client.post(
        reverse("website:cookie_consent"),
        {"choice": "refused", "next": "https://evil.example/", "csrfmiddlewaretoken": token},
    )
    assert away["Location"] == reverse("website:cookies")
    assert list(CookieConsentRecord.objects.values_list("choice", flat=True)) == ["refused"]
