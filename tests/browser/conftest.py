"""Real headless Chromium (Debian's package, never a downloaded browser) driven by Playwright against
pytest-django's live server. Outside CI a machine without /usr/bin/chromium skips, saying why; in CI it
fails (see ``require_service``)."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from accounts.models import Role
from privacy.website import services
from tests.conftest import VerifiedClient, require_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]


@dataclass
class Browsing:
    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base_url}{path}")


@pytest.fixture
def browsing(live_server, monkeypatch) -> Iterator[Browsing]:
    require_service(
        "Chromium",
        CHROMIUM.exists(),
        f"{CHROMIUM} is missing; install Debian's package: apt-get install -y chromium",
    )
    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM calls are
    # still synchronous and sequential, so Django's async-safety guard does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            browsing = Browsing(page=page, base_url=live_server.url)

            def on_console(message: Any) -> None:
                # Chromium reports CSP violations and failed loads as console errors.
                if message.type == "error" or "Content Security Policy" in message.text:
                    browsing.problems.append(f"console {message.type}: {message.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda error: browsing.problems.append(f"page error: {error}"))
            page.on("request", lambda request: browsing.requested.append(request.url))
            yield browsing
        finally:
            browser.close()


@pytest.fixture
def published_notice(make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    draft = services.privacy_notice_create(
        title="How we use your data", summary="Only to answer you.", body="The notice.", actor=dpo
    )
    return services.privacy_notice_publish(notice=draft, actor=dpo)


def sign_in(browsing: Browsing, user: Any) -> None:
    """The session of a verified login (password and second factor), handed to the browser."""
    client = VerifiedClient()
    client.force_login(user)
    browsing.page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": browsing.base_url}]
    )
