"""The public website in real Chromium: cookie consent gates analytics, the contact form works end to
end, and no page logs an error or a Content-Security-Policy violation."""

import pytest

from privacy.models import CookieConsentRecord, WebsiteSubmission

# serialized_rollback: each live-server test starts from the migrated data (role groups) a flush removes.
# Chromium keeps the real clock (it would drop cookies set from a frozen one): relative times only.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ANALYTICS = "script[data-analytics]"


def wait_for_analytics(page) -> None:
    # A marker attribute rather than wait_for_function: a polled string predicate is an eval, which
    # the page's CSP rightly refuses.
    page.locator("html[data-analytics-loaded]").wait_for(state="attached")
    assert page.evaluate("() => window.fusionAnalytics.pageViews") == 1


def analytics_requested(browsing) -> bool:
    return any(url.endswith("/website/js/analytics.js") for url in browsing.requested)


def test_analytics_load_only_after_accepting_and_the_choice_can_be_changed(browsing, published_notice):
    page = browsing.page
    browsing.goto("/site/")
    banner = page.locator("#cookie-banner")
    banner.wait_for(state="visible")
    assert page.locator(ANALYTICS).count() == 0
    assert page.evaluate("typeof window.fusionAnalytics") == "undefined"

    page.get_by_role("button", name="Accept analytics cookies").click()
    wait_for_analytics(page)
    assert page.locator(ANALYTICS).count() == 1
    assert banner.is_hidden()
    assert list(CookieConsentRecord.objects.values_list("choice", flat=True)) == ["accepted"]

    page.reload()
    wait_for_analytics(page)
    assert page.locator("#cookie-banner").is_hidden()

    page.get_by_role("link", name="Cookie settings").click()
    page.locator("#cookie-banner").wait_for(state="visible")
    page.get_by_role("button", name="Refuse analytics cookies").click()
    page.locator("#cookie-banner").wait_for(state="hidden")
    page.reload()
    assert page.locator(ANALYTICS).count() == 0
    assert page.evaluate("typeof window.fusionAnalytics") == "undefined"
    assert list(CookieConsentRecord.objects.order_by("pk").values_list("choice", flat=True)) == [
        "accepted",
        "refused",
    ]
    assert browsing.problems == []


def test_refusing_keeps_analytics_out(browsing, published_notice):
    page = browsing.page
    browsing.goto("/site/")
    accept = page.get_by_role("button", name="Accept analytics cookies")
    refuse = page.get_by_role("button", name="Refuse analytics cookies")
    # Equally easy: the same size, side by side in the same banner.
    accept_box, refuse_box = accept.bounding_box(), refuse.bounding_box()
    assert (accept_box["width"], accept_box["height"]) == (refuse_box["width"], refuse_box["height"])

    refuse.click()
    page.locator("#cookie-banner").wait_for(state="hidden")
    for path in ("/site/", "/site/contact/", "/site/privacy-notice/"):
        browsing.goto(path)
        assert page.locator("#cookie-banner").is_hidden()
        assert page.locator(ANALYTICS).count() == 0
    assert not analytics_requested(browsing)
    assert list(CookieConsentRecord.objects.values_list("choice", flat=True)) == ["refused"]
    assert browsing.problems == []


def test_contact_form_end_to_end(browsing, published_notice):
    page = browsing.page
    browsing.goto("/site/contact/")
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Your message").fill("Please call me about a new line.")
    page.get_by_role("button", name="Send message").click()
    page.get_by_text("Consent: please tick the box").first.wait_for()
    assert not WebsiteSubmission.objects.exists()

    page.get_by_label("I agree that Fusion may use these details").check()
    page.get_by_role("button", name="Send message").click()
    page.get_by_text("your message has been sent").wait_for()
    submission = WebsiteSubmission.objects.get()
    assert (submission.name, submission.email) == ("Ada Lovelace", "ada@example.com")
    assert submission.notice_id == published_notice.pk
    assert not analytics_requested(browsing)
    assert browsing.problems == []
