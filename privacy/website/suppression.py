"""The suppression list as the mailing list export sees it.

INTEGRATION POINT: ``suppressed_email_indexes`` is the only thing the export asks. The suppression
list model (built in parallel) stores ``blind_index("suppression", lower-cased email)`` for everyone
who must never be mailed; at merge this function returns those. Until then it derives the same
digests from the website's own unsubscribed mailing-list entries.
"""

from fusion_site.crypto import blind_index
from privacy.models import WebsiteSubmission

SUPPRESSION_PURPOSE = "suppression"


def suppression_index(email: str) -> str:
    return blind_index(SUPPRESSION_PURPOSE, email.strip().lower())


def suppressed_email_indexes() -> set[str]:
    unsubscribed = WebsiteSubmission.objects.filter(
        kind=WebsiteSubmission.Kind.MAILING_LIST, status=WebsiteSubmission.Status.UNSUBSCRIBED
    ).only("email")
    return {suppression_index(entry.email) for entry in unsubscribed.iterator(chunk_size=2000)}
