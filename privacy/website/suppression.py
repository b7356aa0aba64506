"""The suppression list as the mailing list export sees it: everyone who objected to direct marketing
(privacy.models.SuppressionEntry, HMACs only, kept through erasure) and everyone who unsubscribed."""

from privacy.models import SuppressionEntry, WebsiteSubmission
from privacy.selectors import suppression_hmac


def suppression_index(email: str) -> str:
    return suppression_hmac(SuppressionEntry.Channel.EMAIL, email)


def suppressed_email_indexes() -> set[str]:
    objected = set(
        SuppressionEntry.objects.filter(channel=SuppressionEntry.Channel.EMAIL).values_list(
            "value_hmac", flat=True
        )
    )
    unsubscribed = WebsiteSubmission.objects.filter(
        kind=WebsiteSubmission.Kind.MAILING_LIST, status=WebsiteSubmission.Status.UNSUBSCRIBED
    ).only("email")
    return objected | {suppression_index(entry.email) for entry in unsubscribed.iterator(chunk_size=2000)}
