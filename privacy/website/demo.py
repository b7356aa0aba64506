"""The first privacy notice for the demo, published by the demo DPO."""

from accounts.models import Role, User
from privacy.models import PrivacyNotice
from privacy.website import selectors, services

FIRST_NOTICE_TITLE = "How Fusion Telecom uses your personal data"
FIRST_NOTICE_SUMMARY = (
    "Fusion Telecom Ltd is the controller of the data you give us here. We use it only for the purpose "
    "stated above, keep it no longer than needed, never sell it, and you may withdraw consent at any time."
)
FIRST_NOTICE_BODY = "\n\n".join(
    [
        (
            'Fusion Telecom Ltd ("we") provides business telephone lines, calls and broadband in the UK, '
            "directly and through our partners. This notice explains what personal data we hold, why, for how"
            " long, and your rights."
        ),
        (
            "What we collect. Through this website: your name, email address and message when you contact us;"
            " your email address (and name, if given) when you join our mailing list; your details and CV "
            "when you apply for a job. As a provider: account contacts, site addresses, telephone numbers, "
            "call records, invoices and Direct Debit details."
        ),
        (
            "Why. Website forms: your consent, which you can withdraw at any time. Accounts and billing: the "
            "contract with you or your employer, and our legal obligations (for example, keeping VAT invoices"
            " for six years)."
        ),
        (
            "How long. Enquiries: 12 months after our last reply. Mailing list: until you unsubscribe. Job "
            "applications: 6 months after the job is filled. Customer accounts: one month after the contract "
            "ends, unless the law or an open dispute requires longer."
        ),
        (
            "Your rights. You may ask for a copy of your data, its correction or erasure, restriction of or "
            'objection to its processing, and a portable copy. Use the "Your data rights" page; we reply '
            "within one month. You may also complain to the Information Commissioner's Office (ico.org.uk)."
        ),
        (
            "Cookies. We set only the cookies the site needs, unless you accept analytics cookies in the "
            'cookie banner. You can change your choice at any time through "Cookie settings" at the bottom of'
            " every page."
        ),
        ("Contact. Our data protection officer: dpo@fusion.example."),
    ]
)


class NoDataProtectionOfficer(Exception):
    pass


def seed_first_notice() -> PrivacyNotice:
    """Idempotent: publishes version 1 only while nothing is published."""
    current = selectors.current_notice()
    if current is not None:
        return current
    dpo = (
        User.objects.filter(groups__name=Role.DATA_PROTECTION_OFFICER.value, is_active=True)
        .order_by("pk")
        .first()
    )
    if dpo is None:
        raise NoDataProtectionOfficer(
            "No active data protection officer to publish the notice; run seed_demo first."
        )
    draft = services.privacy_notice_create(
        title=FIRST_NOTICE_TITLE, summary=FIRST_NOTICE_SUMMARY, body=FIRST_NOTICE_BODY, actor=dpo
    )
    return services.privacy_notice_publish(notice=draft, actor=dpo)
