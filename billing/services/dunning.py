"""Dunning: each day, for every customer with an overdue balance, take the partner's steps that are due
and not yet taken (a reminder, a final notice, suspension of outgoing calls), in order, once each per
overdue episode.

- The episode is named by the due date of the customer's oldest unpaid invoice (issue date plus
  ``INVOICE_PAYMENT_TERMS_DAYS``); a step is due ``days_overdue`` days after it. Paying that invoice ends the
  episode: the steps of it that fall due afterwards are recorded as skipped (paid), and a later unpaid
  invoice starts an episode of its own. A customer whose balance is nothing or in credit (money not yet
  allocated) is skipped the same way.
- Privacy flags: a notice about a debt is not marketing, and recovering a debt owed under the contract is
  the contract's performance and a legitimate interest (UK GDPR Art. 6(1)(b), 6(1)(f)); a customer who
  objected to billing (``billing_ceased_at``) is still told what it owes, under the basis recorded on the
  action (Art. 21(1): compelling legitimate grounds, and the exercise of legal claims). Where processing is
  restricted (Art. 18) nothing is sent: the notice is recorded as held, with why; a suspension order is
  still placed through ``accounts.services.provisioning_order_create``, which holds it until the
  restriction is lifted (lifting releases held orders), and the action records it as held.
- A held step ends once, recorded on its action (``released_at``, ``released_outcome``): after the
  restriction is lifted, the first run sends a held notice if its episode is still owed (Art. 18(2) stops
  the processing while restricted, not the debt); a held suspension's orders were released by the lift
  itself. An episode paid meanwhile sends nothing, and the run withdraws the suspension orders still held
  (``accounts.services.provisioning_order_withdraw``), so lifting the restriction does not suspend a
  customer who has paid; ``privacy`` runs a customer's dunning before it lifts a restriction for the same
  reason (a payment and a lift on the same day, before the daily run).
- The job is idempotent (``DunningAction`` is unique per customer, step and episode, and each chunk locks
  its customers before reading what was done), chunked (one transaction a chunk), and set-based: a chunk
  costs a fixed number of queries however many customers it holds, except suspensions, which place one
  order per live line through the accounts service (few, and each must leave its own history).
"""

import datetime
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import Max, Q, QuerySet, Sum
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Contact, Customer, Line, Partner, ProvisioningOrder, User
from accounts.services import provisioning_order_create, provisioning_order_withdraw, system_user
from billing.dunning_models import DEFAULT_EFFECTIVE_FROM, DunningStepKind
from billing.models import (
    DEFAULT_DUNNING_STEPS,
    INVOICE_PAYMENT_TERMS_DAYS,
    DunningAction,
    DunningStep,
    Invoice,
    LedgerEntry,
    PartnerBillingProfile,
    invoice_due_date,
)
from billing.services.ledger import lock_customers
from fusion_site.models import save_with_actor
from fusion_site.money import format_money, to_money

DUNNING_JOB = "dunning"
CHUNK_SIZE = 500
# Episodes whose last step should have been taken this many days ago or less are still looked at, so a
# job that did not run for a while catches up (and records the skipped steps of episodes paid meanwhile).
CATCH_UP_DAYS = 60

# The lawful basis recorded on every debt recovery notice sent (the data map states the same).
LAWFUL_BASIS_DEBT_RECOVERY = (
    "UK GDPR Art. 6(1)(b) performance of the contract and Art. 6(1)(f) legitimate interests: recovering a "
    "debt owed under the contract. A service message, not direct marketing (PECR reg. 22 and marketing "
    "objections do not apply); an objection to billing does not stop it (Art. 21(1): compelling legitimate "
    "grounds, and the establishment or exercise of legal claims)."
)
HELD_FOR_RESTRICTION = (
    "UK GDPR Art. 18: the customer's processing is restricted ({reason}); nothing is sent or done until the "
    "restriction is lifted."
)

EMAIL_KINDS = {DunningStepKind.REMINDER_EMAIL, DunningStepKind.FINAL_NOTICE_EMAIL}
SUBJECTS = {
    DunningStepKind.REMINDER_EMAIL: "Reminder: your account {reference} is overdue",
    DunningStepKind.FINAL_NOTICE_EMAIL: "Final notice: your account {reference} is overdue",
}

Progress = Callable[[int], None]


# The partner's steps.


@transaction.atomic
def dunning_steps_ensure(*, actor: User | None, partner_ids: Iterable[int] | None = None) -> int:
    """Give the partners (all, if none named) that have no steps yet the default ones. Returns how many
    steps were made; two queries whatever the number of partners."""
    partners = Partner.objects.exclude(pk__in=DunningStep.objects.values("partner_id"))
    if partner_ids is not None:
        partners = partners.filter(pk__in=list(partner_ids))
    steps = [
        DunningStep(
            partner_id=partner_id, days_overdue=days, kind=kind, effective_from=DEFAULT_EFFECTIVE_FROM
        )
        for partner_id in partners.values_list("pk", flat=True)
        for days, kind in DEFAULT_DUNNING_STEPS
    ]
    DunningStep.objects.bulk_create(steps)
    if steps:
        audit_record(actor=actor, action="dunning.default_steps_created", detail={"steps": len(steps)})
    return len(steps)


def _check_may_change(actor: User, partner_id: int, permission: str) -> None:
    if not actor.has_perm(permission) or actor.is_portal_user:
        raise PermissionDenied("You may not change dunning steps.")
    if actor.partner_id is not None and actor.partner_id != partner_id:
        raise PermissionDenied("These are another partner's dunning steps.")


@transaction.atomic
def dunning_step_create(
    *,
    partner: Partner,
    actor: User,
    days_overdue: int,
    kind: str,
    effective_from: datetime.date,
    active: bool = True,
) -> DunningStep:
    _check_may_change(actor, partner.pk, "billing.add_dunningstep")
    step = DunningStep(
        partner=partner, days_overdue=days_overdue, kind=kind, effective_from=effective_from, active=active
    )
    save_with_actor(step, actor=actor, reason="Step added")
    audit_record(actor=actor, action="dunning.step_created", target=step, detail={"partner": partner.pk})
    return step


@transaction.atomic
def dunning_step_update(
    *,
    step: DunningStep,
    actor: User,
    days_overdue: int,
    kind: str,
    effective_from: datetime.date,
    active: bool,
) -> DunningStep:
    """Change a step; what it already did stays recorded as it was (each action keeps its days and kind)."""
    _check_may_change(actor, step.partner_id, "billing.change_dunningstep")
    step.days_overdue, step.kind, step.effective_from, step.active = (
        days_overdue,
        kind,
        effective_from,
        active,
    )
    save_with_actor(step, actor=actor, reason="Step changed")
    audit_record(actor=actor, action="dunning.step_changed", target=step, detail={"partner": step.partner_id})
    return step


# The daily run.


@dataclass(frozen=True)
class _Episode:
    customer_id: int
    due_on: datetime.date
    invoice_id: int
    invoice_number: str
    overdue_amount: Decimal


def dunning_candidates(*, today: datetime.date) -> list[int]:
    """Customers the run looks at, in id order: those with an invoice unpaid past its due date, and those
    with an episode recent enough to have steps still to record. Two queries."""
    overdue = set(
        _overdue_invoices(today, Customer.objects.filter(erased_at__isnull=True).values("pk"))
        .values_list("customer_id", flat=True)
        .distinct()
    )
    longest = DunningStep.objects.aggregate(longest=Max("days_overdue"))["longest"] or 0
    since = today - datetime.timedelta(days=longest + CATCH_UP_DAYS)
    recent = set(
        DunningAction.objects.filter(due_on__gte=since, customer__erased_at__isnull=True)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    held = set(_held_actions().filter(customer__erased_at__isnull=True).values_list("customer_id", flat=True))
    return sorted(overdue | recent | held)


def _held_actions() -> QuerySet[DunningAction]:
    """Steps held by a restriction and not yet released (of any age: a restriction may last long)."""
    return DunningAction.objects.filter(
        outcome=DunningAction.Outcome.HELD_RESTRICTED, released_at__isnull=True
    )


def _overdue_invoices(today: datetime.date, customer_ids: Any) -> QuerySet[Any]:
    """Finalised invoices unpaid past their due date (each with ``amount_outstanding``)."""
    # Due before today: issued before today less the payment terms.
    last_issue = today - datetime.timedelta(days=INVOICE_PAYMENT_TERMS_DAYS + 1)
    return Invoice.objects.filter(
        customer_id__in=customer_ids,
        status=Invoice.Status.FINALISED,
        issue_date__lte=last_issue,
        amount_outstanding__gt=0,
    )


def dunning_run(
    *,
    today: datetime.date,
    actor: User,
    progress: Progress | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Counter[str]:
    """Take every due step for every candidate customer, a chunk of customers per transaction; returns how
    many actions of each outcome were recorded. Running it again the same day records nothing."""
    dunning_steps_ensure(actor=actor)
    candidates = dunning_candidates(today=today)
    steps = _steps_by_partner()
    totals: Counter[str] = Counter()
    for start in range(0, len(candidates), chunk_size):
        chunk = candidates[start : start + chunk_size]
        totals += dunning_run_chunk(customer_ids=chunk, today=today, actor=actor, steps=steps)
        if progress is not None:
            progress(start + len(chunk))
    return totals


def dunning_run_for_customer(*, customer_id: int, today: datetime.date) -> Counter[str]:
    """One customer's dunning brought up to date, as the daily job would (as its system actor). Privacy
    calls it before lifting a restriction: held suspension orders of a debt paid since are withdrawn
    before the lift would release them."""
    return dunning_run_chunk(customer_ids=[customer_id], today=today, actor=system_user(job=DUNNING_JOB))


def _steps_by_partner() -> dict[int, list[DunningStep]]:
    grouped: dict[int, list[DunningStep]] = {}
    for step in DunningStep.objects.filter(active=True).order_by("partner_id", "days_overdue", "pk"):
        grouped.setdefault(step.partner_id, []).append(step)
    return grouped


@transaction.atomic
def dunning_run_chunk(
    *,
    customer_ids: Sequence[int],
    today: datetime.date,
    actor: User,
    steps: dict[int, list[DunningStep]] | None = None,
) -> Counter[str]:
    """One chunk of the run, in one transaction, under the lock of its customers' rows (the ledger's
    lock: a payment recorded meanwhile waits, and a second run waits and then finds the actions)."""
    steps = _steps_by_partner() if steps is None else steps
    lock_customers(customer_ids)
    customers = {
        customer.pk: customer
        for customer in Customer.objects.filter(pk__in=customer_ids, erased_at__isnull=True).only(
            "pk",
            "partner_id",
            "billing_ceased_at",
            "processing_restricted_at",
            "processing_restricted_reason",
        )
    }
    episodes = _current_episodes(today, list(customers))
    balances = _balances(list(customers))
    longest = max((step.days_overdue for group in steps.values() for step in group), default=0)
    since = today - datetime.timedelta(days=longest + CATCH_UP_DAYS)
    taken: set[tuple[int, int, datetime.date]] = set()
    # Each customer's recent episodes (due date -> the invoice that opened it).
    past: dict[int, dict[datetime.date, int]] = {}
    # The current episode's actions are read whatever its age: an episode older than the catch-up window
    # is still open while unpaid, and its steps were taken by an earlier run.
    current_dues = {episode.due_on for episode in episodes.values()}
    for customer_id, step_id, due_on, invoice_id in (
        DunningAction.objects.filter(customer_id__in=list(customers))
        .filter(Q(due_on__gte=since) | Q(due_on__in=current_dues))
        .values_list("customer_id", "step_id", "due_on", "invoice_id")
    ):
        current = episodes.get(customer_id)
        if due_on < since and (current is None or current.due_on != due_on):
            continue  # another customer's old episode that shares the date
        taken.add((customer_id, step_id, due_on))
        past.setdefault(customer_id, {})[due_on] = invoice_id

    now = timezone.now()
    planned: list[tuple[Customer, DunningStep, _Episode, str]] = []
    for customer in customers.values():
        partner_steps = steps.get(customer.partner_id, [])
        episode = episodes.get(customer.pk)
        # Episodes that ended (their oldest invoice was paid): the steps now due are skipped.
        for due_on, invoice_id in sorted(past.get(customer.pk, {}).items()):
            if episode is not None and episode.due_on == due_on:
                continue
            ended = _Episode(customer.pk, due_on, invoice_id, "", Decimal("0.00"))
            for step in _due_steps(partner_steps, ended, today, taken):
                planned.append((customer, step, ended, DunningAction.Outcome.SKIPPED_PAID))
        if episode is None:
            continue
        paid = balances.get(customer.pk, Decimal("0.00")) <= 0
        for step in _due_steps(partner_steps, episode, today, taken):
            if paid:
                planned.append((customer, step, episode, DunningAction.Outcome.SKIPPED_PAID))
            elif customer.is_processing_restricted:
                planned.append((customer, step, episode, DunningAction.Outcome.HELD_RESTRICTED))
            else:
                planned.append((customer, step, episode, ""))
    released = _release_held(customers, episodes, balances, now=now, actor=actor)
    return released + _take(planned, today=today, now=now, actor=actor, balances=balances)


def _release_held(
    customers: dict[int, Customer],
    episodes: dict[int, _Episode],
    balances: dict[int, Decimal],
    *,
    now: datetime.datetime,
    actor: User,
) -> Counter[str]:
    """End the held steps that can end (once each: the chunk holds its customers' locks and a released
    action is not looked at again). Counted as ``released_<outcome>``."""
    held = list(
        _held_actions().filter(customer_id__in=list(customers)).order_by("due_on", "days_overdue", "pk")
    )
    if not held:
        return Counter()
    order_ids = [pk for action in held for pk in action.provisioning_order_ids]
    orders = {order.pk: order for order in ProvisioningOrder.objects.filter(pk__in=order_ids)}
    notified = {action.customer_id for action in held if action.kind in EMAIL_KINDS}
    addresses = _addresses(notified)
    profiles = {
        profile.partner_id: profile
        for profile in PartnerBillingProfile.objects.filter(
            partner_id__in={customers[action.customer_id].partner_id for action in held}
        )
    }
    messages: list[tuple[str, str, str | None, list[str]]] = []
    released: list[DunningAction] = []
    for action in held:
        customer = customers[action.customer_id]
        episode = episodes.get(customer.pk)
        owed = (
            episode is not None
            and episode.due_on == action.due_on
            and balances.get(customer.pk, Decimal("0.00")) > 0
        )
        its_orders = [orders[pk] for pk in action.provisioning_order_ids if pk in orders]
        unsent = [order for order in its_orders if order.status in _UNSENT]
        if not owed:
            for order in unsent:
                provisioning_order_withdraw(
                    order=order,
                    actor=actor,
                    reason=f"Dunning: the debt overdue since {action.due_on} is paid",
                )
            suspended = any(order.status in _SENT for order in its_orders)
            action.released_outcome = (
                DunningAction.Outcome.SUSPENDED if suspended else DunningAction.Outcome.SKIPPED_PAID
            )
            action.note = _joined(
                action.note,
                "Released by the lift before the payment was seen: suspension ordered."
                if suspended
                else "Paid while held: nothing sent"
                + ("; its suspension orders withdrawn." if unsent else "."),
            )
        elif customer.is_processing_restricted or any(
            o.status == ProvisioningOrder.Status.HELD for o in its_orders
        ):
            continue  # still held (a held order is released by the lift, not here)
        elif action.kind in EMAIL_KINDS:
            address = addresses.get(customer.pk)
            if address is None:
                action.released_outcome = DunningAction.Outcome.NO_ADDRESS
            else:
                assert episode is not None
                action.released_outcome = DunningAction.Outcome.SENT
                action.note = _joined(action.note, f"Held: {action.lawful_basis}")
                action.lawful_basis = LAWFUL_BASIS_DEBT_RECOVERY
                step = DunningStep(kind=action.kind, days_overdue=action.days_overdue)
                messages.append(
                    _notice(
                        customer,
                        step,
                        episode,
                        address,
                        balances[customer.pk],
                        profiles.get(customer.partner_id),
                    )
                )
        else:
            action.released_outcome = DunningAction.Outcome.SUSPENDED
            action.note = _joined(action.note, "Suspension orders released when the restriction was lifted.")
        action.released_at = now
        released.append(action)
    DunningAction.objects.bulk_update(
        released, ["released_at", "released_outcome", "note", "lawful_basis"], batch_size=CHUNK_SIZE
    )
    counts = Counter(f"released_{action.released_outcome}" for action in released)
    if counts:
        audit_record(
            actor=actor,
            action="dunning.held_steps_released",
            detail={k: n for k, n in sorted(counts.items())},
        )
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return counts


_UNSENT = {ProvisioningOrder.Status.HELD, ProvisioningOrder.Status.QUEUED}
_SENT = {ProvisioningOrder.Status.SUBMITTED, ProvisioningOrder.Status.COMPLETED}


def _joined(*notes: str) -> str:
    return " ".join(note for note in notes if note)


def _due_steps(
    steps: list[DunningStep],
    episode: _Episode,
    today: datetime.date,
    taken: set[tuple[int, int, datetime.date]],
) -> list[DunningStep]:
    due = []
    for step in steps:
        day = episode.due_on + datetime.timedelta(days=step.days_overdue)
        already = (episode.customer_id, step.pk, episode.due_on) in taken
        if step.effective_from <= day <= today and not already:
            due.append(step)
    return due


def _current_episodes(today: datetime.date, customer_ids: list[int]) -> dict[int, _Episode]:
    """Each customer's oldest invoice unpaid past its due date, and what is overdue in all (one query)."""
    oldest: dict[int, _Episode] = {}
    totals: dict[int, Decimal] = {}
    rows = (
        _overdue_invoices(today, customer_ids)
        .order_by("customer_id", "issue_date", "pk")
        .values_list("customer_id", "pk", "number", "issue_date", "amount_outstanding")
    )
    for customer_id, pk, number, issue_date, outstanding in rows:
        amount = to_money(Decimal(outstanding))
        totals[customer_id] = totals.get(customer_id, Decimal("0.00")) + amount
        if customer_id not in oldest:
            oldest[customer_id] = _Episode(customer_id, invoice_due_date(issue_date), pk, number, amount)
    return {
        customer_id: _Episode(e.customer_id, e.due_on, e.invoice_id, e.invoice_number, totals[customer_id])
        for customer_id, e in oldest.items()
    }


def _balances(customer_ids: list[int]) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(customer_id__in=customer_ids)
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values_list("customer_id", "total")
    )
    return {customer_id: to_money(Decimal(total)) for customer_id, total in rows}


def _take(
    planned: list[tuple[Customer, DunningStep, _Episode, str]],
    *,
    today: datetime.date,
    now: datetime.datetime,
    actor: User,
    balances: dict[int, Decimal],
) -> Counter[str]:
    """Carry out the planned steps and record them, in one insert; emails go on commit."""
    if not planned:
        return Counter()
    emailed = {c.pk for c, step, _e, outcome in planned if not outcome and step.kind in EMAIL_KINDS}
    suspended = {c.pk for c, step, _e, outcome in planned if _suspends(step, outcome)}
    addresses = _addresses(emailed)
    lines = _live_lines(suspended, today)
    profiles = {
        profile.partner_id: profile
        for profile in PartnerBillingProfile.objects.filter(
            partner_id__in={customer.partner_id for customer, *_rest in planned}
        )
    }
    actions: list[DunningAction] = []
    messages: list[tuple[str, str, str | None, list[str]]] = []
    for customer, step, episode, outcome in planned:
        action = DunningAction(
            customer_id=customer.pk,
            step=step,
            kind=step.kind,
            days_overdue=step.days_overdue,
            due_on=episode.due_on,
            invoice_id=episode.invoice_id,
            overdue_amount=episode.overdue_amount,
            taken_at=now,
            actor=actor,
        )
        if outcome == DunningAction.Outcome.HELD_RESTRICTED:
            action.lawful_basis = HELD_FOR_RESTRICTION.format(
                reason=customer.processing_restricted_reason or "no reason given"
            )
        if _suspends(step, outcome):
            orders = _suspend(customer, lines.get(customer.pk, []), episode, actor)
            action.provisioning_order_ids = [order.pk for order in orders]
            if not orders:
                outcome = DunningAction.Outcome.NO_LINES
            elif any(order.status == ProvisioningOrder.Status.HELD for order in orders):
                outcome = DunningAction.Outcome.HELD_RESTRICTED
                action.note = "Suspension orders placed and held by the restriction."
            else:
                outcome = DunningAction.Outcome.SUSPENDED
        elif not outcome:
            address = addresses.get(customer.pk)
            if address is None:
                outcome = DunningAction.Outcome.NO_ADDRESS
            else:
                outcome = DunningAction.Outcome.SENT
                action.lawful_basis = LAWFUL_BASIS_DEBT_RECOVERY
                balance = balances.get(customer.pk, episode.overdue_amount)
                messages.append(
                    _notice(customer, step, episode, address, balance, profiles.get(customer.partner_id))
                )
        action.outcome = outcome
        actions.append(action)
    DunningAction.objects.bulk_create(actions)
    counts = Counter(action.outcome for action in actions)
    audit_record(
        actor=actor, action="dunning.steps_taken", detail={key: n for key, n in sorted(counts.items())}
    )
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return counts


def _suspends(step: DunningStep, outcome: str) -> bool:
    # A restricted customer's suspension is still ordered: the accounts service holds the order.
    return step.kind == DunningStepKind.SUSPEND_OUTGOING_CALLS and outcome in (
        "",
        DunningAction.Outcome.HELD_RESTRICTED,
    )


def _suspend(
    customer: Customer, lines: list[Line], episode: _Episode, actor: User
) -> list[ProvisioningOrder]:
    notes = (
        f"Dunning: suspend outgoing calls; {format_money(episode.overdue_amount)} overdue since "
        f"{episode.due_on:%d %B %Y}."
    )
    return [
        provisioning_order_create(
            customer=customer, kind=ProvisioningOrder.Kind.MODIFY, actor=actor, line=line, notes=notes
        )
        for line in lines
    ]


def _live_lines(customer_ids: set[int], today: datetime.date) -> dict[int, list[Line]]:
    if not customer_ids:
        return {}
    grouped: dict[int, list[Line]] = {}
    lines = Line.objects.filter(customer_id__in=customer_ids, start_date__lte=today).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=today)
    )
    for line in lines.order_by("customer_id", "pk"):
        grouped.setdefault(line.customer_id, []).append(line)
    return grouped


def _addresses(customer_ids: set[int]) -> dict[int, str]:
    """Where each customer's notices go: the billing contact, else the primary one (one query)."""
    if not customer_ids:
        return {}
    contacts = Contact.objects.filter(
        customer_id__in=customer_ids, role__in=[Contact.ContactRole.BILLING, Contact.ContactRole.PRIMARY]
    )
    addresses: dict[int, str] = {}
    for contact in sorted(
        contacts, key=lambda c: (c.customer_id, c.role != Contact.ContactRole.BILLING, c.pk)
    ):
        if contact.email:
            addresses.setdefault(contact.customer_id, contact.email)
    return addresses


def _notice(
    customer: Customer,
    step: DunningStep,
    episode: _Episode,
    address: str,
    balance: Decimal,
    profile: PartnerBillingProfile | None,
) -> tuple[str, str, str | None, list[str]]:
    """The reminder or final notice: what is overdue, since when, the balance, and how to pay."""
    reference = customer.reference
    subject = SUBJECTS[DunningStepKind(step.kind)].format(reference=reference)
    final = step.kind == DunningStepKind.FINAL_NOTICE_EMAIL
    lines = [
        f"{'Final notice' if final else 'Payment reminder'} for account {reference}",
        "",
        f"{format_money(episode.overdue_amount)} on your account is overdue: the oldest unpaid invoice"
        + (f", {episode.invoice_number}," if episode.invoice_number else "")
        + f" was due on {episode.due_on:%d %B %Y}.",
        f"Your balance today is {format_money(balance)}.",
        "",
        "How to pay:",
    ]
    if profile is not None and profile.bacs_sort_code and profile.bacs_account_number:
        sort_code = "-".join(profile.bacs_sort_code[i : i + 2] for i in (0, 2, 4))
        lines.append(
            f"- by bank transfer to {profile.bacs_account_name or profile.legal_name}, "
            f"sort code {sort_code}, account {profile.bacs_account_number}, quoting {reference};"
        )
    lines.append("- or by card: call us, quoting your account reference.")
    lines.append("If you have paid in the last few days, thank you, and please ignore this notice.")
    if final:
        lines += [
            "",
            "If the balance is not paid, outgoing calls on your lines may be suspended without further "
            "notice. Incoming calls and calls to emergency services are not affected.",
        ]
    lines += ["", profile.legal_name if profile is not None else ""]
    return (subject, "\n".join(lines).rstrip() + "\n", settings.DEFAULT_FROM_EMAIL, [address])
