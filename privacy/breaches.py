"""Reads of the breach register: the 72-hour clock, and the customers a breach reached, found from the
evidence (the access log and the audit trail), never guessed.

The clock counts 72 real hours from awareness, under UK GDPR Art. 33(1) and, since 20 August 2025, PECR
reg. 5A(2) alike (amended by the Data (Use and Access) Act 2025 s.111, commenced by SI 2025/904 reg. 2(p);
it was 24 hours before): weekends and bank holidays do not stop it, and across a change of the clocks the
deadline is 72 hours of elapsed time, so the local time it shows moves by the hour the clocks moved.
Arithmetic is done in UTC for that reason.
"""

import datetime
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.alerts import register_alert_followup
from accounts.audit import EXPORT_ACTION_PREFIX
from accounts.models import AccessLog, AuditEvent, Customer, User
from fusion_site.personal_data import Category
from privacy import data_map
from privacy.models import BreachIncident

# When the DPO is reminded, in real hours from awareness, each reminder once (its kind is unique per
# incident): a third, two thirds and the end of the 72 hours, the same for PECR incidents (reg. 5A(2) as
# amended: 72 hours, as Art. 33(1)).
REMINDER_AFTER = {
    "24h": datetime.timedelta(hours=24),
    "48h": datetime.timedelta(hours=48),
    "overdue": datetime.timedelta(hours=72),
}
# Access log fields that name no model of the data map: what the person saw.
WHOLE_RECORD = "Whole record (site details, export or report)"
FIELD_ALIASES = {"payment": "paymentdetails"}


@dataclass(frozen=True)
class Clock:
    deadline: datetime.datetime
    remaining: datetime.timedelta
    # Why it stopped: the ICO was notified, or the decision is not to notify; empty while it runs.
    stopped: str

    @property
    def decided(self) -> bool:
        return bool(self.stopped)

    @property
    def overdue(self) -> bool:
        return not self.decided and self.remaining <= datetime.timedelta(0)

    @property
    def hours_left(self) -> int:
        return int(self.remaining.total_seconds() // 3600)

    @property
    def text(self) -> str:
        if self.decided:
            return self.stopped
        seconds = int(abs(self.remaining.total_seconds()))
        hours, minutes = seconds // 3600, seconds % 3600 // 60
        if self.remaining <= datetime.timedelta(0):
            return f"overdue by {hours} h {minutes:02d} min"
        return f"{hours} h {minutes:02d} min left"


def clock_of(incident: BreachIncident, *, now: datetime.datetime) -> Clock:
    """The incident's clock at ``now``: it stops when the ICO is notified or the decision is not to
    notify; a decision to notify that is not yet sent leaves it running."""
    deadline = incident.notification_deadline
    if incident.ico_notified_at is not None:
        stopped = "ICO notified"
    elif incident.ico_decision == BreachIncident.IcoDecision.DO_NOT_NOTIFY:
        stopped = "not notifiable"
    else:
        stopped = ""
    return Clock(deadline, deadline - now.astimezone(datetime.UTC), stopped)


def incidents_for_register(*, pecr_only: bool = False) -> QuerySet[BreachIncident]:
    """The register; ``pecr_only`` gives the log of PECR breaches the ICO expects us to keep (reg. 5A(8):
    the facts, their effects and the remedial action taken, which every incident records)."""
    incidents = BreachIncident.objects.select_related("handler", "ico_decided_by", "subjects_decided_by")
    return incidents.filter(pecr=True) if pecr_only else incidents


def incidents_needing_reminders(*, now: datetime.datetime) -> QuerySet[BreachIncident]:
    """Open incidents whose clock still runs (no decision, or a decision to notify not yet sent) and
    whose first reminder is due."""
    running = Q(ico_decision="") | Q(
        ico_decision=BreachIncident.IcoDecision.NOTIFY, ico_notified_at__isnull=True
    )
    return (
        BreachIncident.objects.filter(running)
        .filter(status=BreachIncident.Status.OPEN, became_aware_at__lte=now - REMINDER_AFTER["24h"])
        .order_by("became_aware_at", "pk")
    )


def alert_incident_line(event: AuditEvent) -> str:
    return (
        "If this may be a personal data breach, open an incident with the alert's facts filled in: "
        f"{settings.SITE_URL}{reverse('privacy:breach_new')}?alert={event.pk}"
    )


def register_alert_link() -> None:
    """Every unusual-access alert offers to open a breach incident (called from ``PrivacyConfig.ready``)."""
    register_alert_followup("privacy.breach_incident", alert_incident_line)


# Evidence ------------------------------------------------------------------------------------------


@dataclass
class AffectedSubject:
    customer: Customer
    events: int = 0
    first_at: datetime.datetime | None = None
    last_at: datetime.datetime | None = None
    actions: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    @property
    def category_counts(self) -> list[tuple[str, int]]:
        # A list, not the Counter: a template's ``.items`` on a Counter reads the key "items" (0).
        return sorted(self.categories.items())

    def saw(self, at: datetime.datetime, action: str, categories: set[str]) -> None:
        self.events += 1
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)
        self.actions[action] += 1
        for category in categories:
            self.categories[category] += 1


def _field_categories() -> dict[tuple[str, str], str]:
    """``(model_name, field)`` of every field of the data map, to its category's label."""
    return {
        (entry.label.split(".")[1].lower(), item.field): str(Category(item.category).label)
        for entry, item in data_map.iter_fields()
    }


def categories_of(fields: list[str], known: dict[tuple[str, str], str]) -> set[str]:
    found: set[str] = set()
    for name in fields:
        model, _, column = str(name).partition(".")
        label = known.get((FIELD_ALIASES.get(model, model), column))
        found.add(label or WHOLE_RECORD)
    return found or {WHOLE_RECORD}


def staff_user_by_email(email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip(), customer__isnull=True).first()


def affected_subjects(
    *, user: User, start: datetime.datetime, end: datetime.datetime
) -> list[AffectedSubject]:
    """The customers whose records ``user`` viewed, revealed or exported from ``start`` (inclusive) to
    ``end`` (exclusive): every access log entry of theirs, and every export in the audit trail that is
    not already one of those entries. Ordered by account reference. Four queries, whatever the window."""
    known = _field_categories()
    found: dict[int, AffectedSubject] = {}
    customers: dict[int, Customer] = {}
    log = AccessLog.objects.filter(user=user, at__gte=start, at__lt=end, customer__isnull=False)
    rows = list(log.values_list("customer_id", "at", "action", "fields"))
    exports = AuditEvent.objects.filter(
        actor_id=user.pk,
        at__gte=start,
        at__lt=end,
        target_type=Customer._meta.label_lower,
        action__startswith=EXPORT_ACTION_PREFIX,
    ).exclude(detail__has_key="access_log")
    export_rows = [
        (int(target_id), at, action, detail.get("fields", []))
        for target_id, at, action, detail in exports.values_list("target_id", "at", "action", "detail")
        if str(target_id).isdigit()
    ]
    ids = {row[0] for row in rows} | {row[0] for row in export_rows}
    customers = {customer.pk: customer for customer in Customer.objects.filter(pk__in=ids)}
    for customer_id, at, action, fields in [*rows, *export_rows]:
        customer = customers.get(customer_id)
        if customer is None:
            continue
        subject = found.setdefault(customer_id, AffectedSubject(customer))
        subject.saw(at, action, categories_of(list(fields or []), known))
    return sorted(found.values(), key=lambda item: item.customer.reference)


def category_totals(subjects: list[AffectedSubject]) -> dict[str, int]:
    """How many of the customers had each category of data reached."""
    totals: Counter[str] = Counter()
    for subject in subjects:
        totals.update(subject.categories.keys())
    return dict(sorted(totals.items()))


def subject_notice(incident: BreachIncident, subject: AffectedSubject) -> str:
    """A draft of the Art. 34 notice to one customer: what happened, likely consequences, measures, and
    whom to contact. The DPO reads and sends it; nothing is sent from here."""
    categories = ", ".join(sorted(subject.categories)) or "account details"
    return (
        f"Dear customer ({subject.customer.reference}),\n\n"
        f"We are writing to tell you about a personal data breach that affects your account.\n\n"
        f"What happened: {incident.description}\n"
        f"When: from {timezone.localtime(incident.occurred_at):%d %B %Y %H:%M}; we became aware on "
        f"{timezone.localtime(incident.became_aware_at):%d %B %Y %H:%M}.\n"
        f"Your data concerned: {categories}.\n\n"
        f"Likely consequences: {incident.likely_consequences}\n\n"
        f"What we have done: {incident.measures_taken}\n"
        + (f"What we will do: {incident.measures_proposed}\n" if incident.measures_proposed else "")
        + f"\nIf you have questions, contact our data protection officer: {settings.BREACH_CONTACT}.\n"
        "You also have the right to complain to the Information Commissioner's Office (ico.org.uk).\n"
    )
