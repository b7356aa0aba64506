"""Rectification through the normal edit screens. A correction saved with a reason that names an open
rectification request of the same customer ("DSR-000042: new surname") is recorded against that request:
an event naming what was corrected and the history row that holds the values before and after. The
event carries field names only, never the values."""

import re
from typing import Any

from accounts.models import Contact, Customer, Line, PaymentDetails, Site
from privacy.models import OPEN_STATES, PrivacyRequest, PrivacyRequestEvent

CORRECTABLE = (Customer, Site, Contact, Line, PaymentDetails)
_REFERENCE = re.compile(rf"\b{re.escape(PrivacyRequest.REFERENCE_PREFIX)}(\d+)\b")


def _changed_fields(history_instance: Any) -> list[str]:
    previous = history_instance.prev_record
    if previous is None:
        return ["(created)"]
    return sorted(change.field for change in history_instance.diff_against(previous).changes)


def record_rectification(*, instance: Any, history_instance: Any, **_kwargs: Any) -> None:
    """simple-history's post_create_historical_record receiver."""
    if not isinstance(instance, CORRECTABLE):
        return
    reason = history_instance.history_change_reason or ""
    ids = {int(number) for number in _REFERENCE.findall(reason)}
    if not ids:
        return
    customer_id = instance.pk if isinstance(instance, Customer) else instance.customer_id
    requests = PrivacyRequest.objects.filter(
        pk__in=ids,
        kind=PrivacyRequest.Kind.RECTIFICATION,
        customer_id=customer_id,
        state__in=OPEN_STATES,
    )
    fields = ", ".join(_changed_fields(history_instance))
    PrivacyRequestEvent.objects.bulk_create(
        PrivacyRequestEvent(
            privacy_request=request,
            actor=history_instance.history_user,
            action="rectified",
            from_state=request.state,
            to_state=request.state,
            reason=(
                f"{type(instance)._meta.verbose_name} #{instance.pk} corrected ({fields}); before and after "
                f"in its history, entry {history_instance.history_id}"
            ),
        )
        for request in requests
    )
