"""Every write of the accounts app: one function per business action.

Each takes the acting user (``actor``), validates with ``full_clean`` before saving, runs in a
transaction, and leaves history attributed to the actor. Side effects are queued on commit.
"""

import datetime
from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts import alerts, mandates
from accounts.audit import audit_record
from accounts.gateways import GatewayRejectedError, provisioning_gateway
from accounts.models import (
    AccessLog,
    Contact,
    Customer,
    Line,
    Partner,
    PaymentDetails,
    ProvisioningOrder,
    Role,
    Site,
    User,
)
from fusion_site.models import UNCHANGED, Unchanged, given, save_with_actor, update_with_actor

CUSTOMER_VISIBILITY_PERMISSION = "accounts.view_customer"
SYSTEM_EMAIL_DOMAIN = "system.fusion.invalid"


def system_user(*, job: str) -> User:
    """The named system actor a job writes history as; it cannot log in."""
    user, created = User.objects.get_or_create(
        email=f"{job}@{SYSTEM_EMAIL_DOMAIN}",
        defaults={"full_name": f"System: {job}", "is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def partner_create(*, code: str, name: str, actor: User | None, vat_number: str = "") -> Partner:
    return partner_register(partner=Partner(code=code, name=name, vat_number=vat_number), actor=actor)


@transaction.atomic
def partner_register(*, partner: Partner, actor: User | None) -> Partner:
    """Save a new partner with the staff group its customers are granted to."""
    partner.staff_group = Group.objects.create(name=f"partner:{partner.code}")
    return save_with_actor(partner, actor=actor)


PARTNER_EDITABLE_FIELDS = ("name", "vat_number")


@transaction.atomic
def partner_update(
    *,
    partner: Partner,
    actor: User,
    reason: str = "",
    name: str | Unchanged = UNCHANGED,
    vat_number: str | Unchanged = UNCHANGED,
) -> Partner:
    """Rename a partner or correct its VAT number; its code names its staff group and does not change."""
    changes = given({"name": name, "vat_number": vat_number})
    return update_with_actor(
        partner, actor=actor, changes=changes, allowed=PARTNER_EDITABLE_FIELDS, reason=reason
    )


@transaction.atomic
def user_create(
    *,
    email: str,
    full_name: str,
    role: Role,
    actor: User | None,
    password: str | None = None,
    partner: Partner | None = None,
    customer: Customer | None = None,
    confidentiality_signed_at: datetime.datetime | None = None,
    gdpr_training_completed_at: datetime.datetime | None = None,
) -> User:
    """Create a staff or portal user in its role group; partner staff join the partner's group and a
    portal user is granted its own customer only."""
    if (role == Role.CUSTOMER) != (customer is not None):
        raise ValidationError({"customer": "A portal user needs a customer, and only a portal user has one."})
    user = User(
        email=email.strip().lower(),
        full_name=full_name,
        is_staff=role != Role.CUSTOMER,
        partner=partner,
        customer=customer,
        confidentiality_signed_at=confidentiality_signed_at,
        gdpr_training_completed_at=gdpr_training_completed_at,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    save_with_actor(user, actor=actor)
    user.groups.add(Group.objects.get(name=role.value))
    return user_sync_scope(user=user)


def user_sync_scope(*, user: User) -> User:
    """Give the user the customers its place implies: partner staff join the partner's group; a portal
    user is granted its own customer and nothing else."""
    if user.partner_id is not None:
        user.groups.add(Partner.objects.get(pk=user.partner_id).staff_group)
    if user.customer is not None:
        assign_perm(CUSTOMER_VISIBILITY_PERMISSION, user, user.customer)
    return user


@transaction.atomic
def customer_create(
    *,
    partner: Partner,
    name: str,
    contract_start: datetime.date,
    actor: User | None,
    contract_end: datetime.date | None = None,
    status: str = Customer.Status.ACTIVE,
) -> Customer:
    customer = Customer(
        partner=partner, name=name, contract_start=contract_start, contract_end=contract_end, status=status
    )
    return customer_register(customer=customer, actor=actor)


@transaction.atomic
def customer_register(*, customer: Customer, actor: User | None) -> Customer:
    """Save a new customer and grant it to its partner's staff group."""
    save_with_actor(customer, actor=actor)
    assign_perm(CUSTOMER_VISIBILITY_PERMISSION, customer.partner.staff_group, customer)
    return customer


CUSTOMER_EDITABLE_FIELDS = ("name", "status", "contract_start", "contract_end")


@transaction.atomic
def customer_update(
    *,
    customer: Customer,
    actor: User,
    reason: str = "",
    name: str | Unchanged = UNCHANGED,
    status: str | Unchanged = UNCHANGED,
    contract_start: datetime.date | Unchanged = UNCHANGED,
    contract_end: datetime.date | Unchanged | None = UNCHANGED,
) -> Customer:
    changes = given(
        {"name": name, "status": status, "contract_start": contract_start, "contract_end": contract_end}
    )
    return update_with_actor(
        customer, actor=actor, changes=changes, allowed=CUSTOMER_EDITABLE_FIELDS, reason=reason
    )


SITE_EDITABLE_FIELDS = ("label", "address_line1", "address_line2", "town", "postcode")


@transaction.atomic
def site_create(
    *,
    customer: Customer,
    actor: User | None,
    label: str,
    address_line1: str,
    town: str,
    postcode: str,
    address_line2: str = "",
) -> Site:
    site = Site(
        customer=customer,
        label=label,
        address_line1=address_line1,
        address_line2=address_line2,
        town=town,
        postcode=postcode,
    )
    return save_with_actor(site, actor=actor)


@transaction.atomic
def site_update(
    *,
    site: Site,
    actor: User,
    reason: str = "",
    label: str | Unchanged = UNCHANGED,
    address_line1: str | Unchanged = UNCHANGED,
    address_line2: str | Unchanged = UNCHANGED,
    town: str | Unchanged = UNCHANGED,
    postcode: str | Unchanged = UNCHANGED,
) -> Site:
    changes = given(
        {
            "label": label,
            "address_line1": address_line1,
            "address_line2": address_line2,
            "town": town,
            "postcode": postcode,
        }
    )
    return update_with_actor(site, actor=actor, changes=changes, allowed=SITE_EDITABLE_FIELDS, reason=reason)


CONTACT_EDITABLE_FIELDS = ("name", "email", "phone", "role")


@transaction.atomic
def contact_create(
    *,
    customer: Customer,
    actor: User | None,
    name: str,
    email: str,
    phone: str,
    role: str = Contact.ContactRole.PRIMARY,
) -> Contact:
    contact = Contact(customer=customer, name=name, email=email, phone=phone, role=role)
    return save_with_actor(contact, actor=actor)


@transaction.atomic
def contact_update(
    *,
    contact: Contact,
    actor: User,
    reason: str = "",
    name: str | Unchanged = UNCHANGED,
    email: str | Unchanged = UNCHANGED,
    phone: str | Unchanged = UNCHANGED,
    role: str | Unchanged = UNCHANGED,
) -> Contact:
    changes = given({"name": name, "email": email, "phone": phone, "role": role})
    return update_with_actor(
        contact, actor=actor, changes=changes, allowed=CONTACT_EDITABLE_FIELDS, reason=reason
    )


@transaction.atomic
def line_create(
    *,
    customer: Customer,
    cli: str,
    line_type: str,
    start_date: datetime.date,
    actor: User | None,
    site: Site | None = None,
    end_date: datetime.date | None = None,
) -> Line:
    if site is not None and site.customer_id != customer.pk:
        raise ValidationError({"site": "The site belongs to another customer."})
    line = Line(
        customer=customer, site=site, cli=cli, line_type=line_type, start_date=start_date, end_date=end_date
    )
    return save_with_actor(line, actor=actor)


LINE_EDITABLE_FIELDS = ("site", "cli", "line_type", "start_date", "end_date")


@transaction.atomic
def line_update(
    *,
    line: Line,
    actor: User,
    reason: str = "",
    site: Site | Unchanged | None = UNCHANGED,
    cli: str | Unchanged = UNCHANGED,
    line_type: str | Unchanged = UNCHANGED,
    start_date: datetime.date | Unchanged = UNCHANGED,
    end_date: datetime.date | Unchanged | None = UNCHANGED,
) -> Line:
    """Change a line; its site stays one of its own customer's."""
    changes = given(
        {"site": site, "cli": cli, "line_type": line_type, "start_date": start_date, "end_date": end_date}
    )
    if isinstance(site, Site) and site.customer_id != line.customer_id:
        raise ValidationError({"site": "The site belongs to another customer."})
    return update_with_actor(line, actor=actor, changes=changes, allowed=LINE_EDITABLE_FIELDS, reason=reason)


@transaction.atomic
def payment_details_set(
    *,
    customer: Customer,
    actor: User | None,
    account_holder: str,
    sort_code: str,
    account_number: str,
    mandate_reference: str,
    amended_by_bank: bool = False,
) -> PaymentDetails:
    """Set the customer's Direct Debit details. When the instruction's details (sort code, account number,
    reference) of a lodged or active mandate change, the old instruction is cancelled (0C) and the new one
    lodged (0N) in the next submission, and nothing is collected until it is active
    (``mandates.mandate_relodge``). ``amended_by_bank``: the payer's bank already applied the change (ADDACS
    C, E, or 3 with new details), which the scheme says is applied without a 0C/0N pair."""
    details = PaymentDetails.objects.select_for_update().filter(customer=customer).first() or PaymentDetails(
        customer=customer
    )
    before = {name: getattr(details, name) for name in SUPERSEDED_FIELDS} if details.pk else None
    details.account_holder = account_holder
    details.sort_code = sort_code
    details.account_number = account_number
    details.mandate_reference = mandate_reference
    saved = save_with_actor(details, actor=actor)
    lodged = saved.status in (PaymentDetails.Status.LODGED, PaymentDetails.Status.ACTIVE)
    if before is None or amended_by_bank or not lodged:
        return saved
    changed = [
        name
        for name in mandates.INSTRUCTION_FIELDS
        if _instruction_value(before[name]) != _instruction_value(getattr(saved, name))
    ]
    if not changed:
        return saved
    if actor is None:
        raise ValidationError(
            {"sort_code": "A change of a lodged instruction's details needs a named actor."}
        )
    return mandates.mandate_relodge(
        mandate=saved,
        actor=actor,
        superseded=before,
        reason=", ".join(name.replace("_", " ") for name in changed),
    )


SUPERSEDED_FIELDS = ("account_holder", "sort_code", "account_number", "mandate_reference")


def _instruction_value(value: str) -> str:
    # Stored values are normalised (sort code and account number digits); the bank matches references in
    # upper case.
    return value.strip().upper()


@transaction.atomic
def customer_restrict_processing(*, customer: Customer, actor: User, reason: str) -> Customer:
    """Hold all processing of the customer: bill runs skip it and provisioning orders are held."""
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for the restriction."})
    customer.processing_restricted_at = timezone.now()
    customer.processing_restricted_by = actor
    customer.processing_restricted_reason = reason
    save_with_actor(customer, actor=actor, reason=f"Processing restricted: {reason}")
    audit_record(actor=actor, action="customer.processing_restricted", target=customer)
    customer.provisioning_orders.filter(status=ProvisioningOrder.Status.QUEUED).update(
        status=ProvisioningOrder.Status.HELD
    )
    return customer


@transaction.atomic
def customer_lift_processing_restriction(*, customer: Customer, actor: User, reason: str) -> Customer:
    """Lift the restriction and release the orders it held."""
    customer.processing_restricted_at = None
    customer.processing_restricted_by = None
    customer.processing_restricted_reason = ""
    save_with_actor(customer, actor=actor, reason=f"Processing restriction lifted: {reason}")
    audit_record(actor=actor, action="customer.processing_restriction_lifted", target=customer)
    held = list(customer.provisioning_orders.filter(status=ProvisioningOrder.Status.HELD))
    for order in held:
        order.status = ProvisioningOrder.Status.QUEUED
        save_with_actor(order, actor=actor, reason="Released after the restriction was lifted")
        _queue_submission(order)
    return customer


def _queue_submission(order: ProvisioningOrder) -> None:
    from accounts.tasks import submit_provisioning_order

    order_id = order.pk
    transaction.on_commit(lambda: submit_provisioning_order.delay(order_id))


@transaction.atomic
def provisioning_order_create(
    *, customer: Customer, kind: str, actor: User, line: Line | None = None, notes: str = ""
) -> ProvisioningOrder:
    """Queue an order to the gateway; a restricted customer's order is held instead."""
    if line is not None and line.customer_id != customer.pk:
        raise ValidationError({"line": "The line belongs to another customer."})
    status = (
        ProvisioningOrder.Status.HELD
        if customer.is_processing_restricted
        else ProvisioningOrder.Status.QUEUED
    )
    order = save_with_actor(
        ProvisioningOrder(
            customer=customer, line=line, kind=kind, notes=notes, requested_by=actor, status=status
        ),
        actor=actor,
    )
    if status == ProvisioningOrder.Status.QUEUED:
        _queue_submission(order)
    return order


@transaction.atomic
def provisioning_order_withdraw(*, order: ProvisioningOrder, actor: User, reason: str) -> ProvisioningOrder:
    """Withdraw an order the gateway has not been sent (held or queued): it is never submitted. An order
    already submitted, completed or failed is refused by its status."""
    order = ProvisioningOrder.objects.select_for_update().get(pk=order.pk)
    if order.status not in (ProvisioningOrder.Status.HELD, ProvisioningOrder.Status.QUEUED):
        raise ValidationError(
            {"status": f"{order} is {order.get_status_display().lower()}; only an unsent order is withdrawn."}
        )
    order.status = ProvisioningOrder.Status.WITHDRAWN
    save_with_actor(order, actor=actor, reason=f"Withdrawn: {reason}")
    audit_record(actor=actor, action="provisioning_order.withdrawn", target=order, detail={"reason": reason})
    return order


@transaction.atomic
def provisioning_order_update_notes(
    *, order: ProvisioningOrder, actor: User, notes: str
) -> ProvisioningOrder:
    """Staff notes on an order; what was ordered, and its progress at the gateway, change only through
    the order's own steps."""
    return update_with_actor(
        order, actor=actor, changes={"notes": notes}, allowed=("notes",), reason="Notes changed"
    )


@transaction.atomic
def provisioning_order_submit(*, order_id: int) -> ProvisioningOrder | None:
    """Send a queued order to the gateway. Idempotent: anything not queued is left alone."""
    order = (
        ProvisioningOrder.objects.select_for_update().select_related("customer").filter(pk=order_id).first()
    )
    if order is None or order.status != ProvisioningOrder.Status.QUEUED:
        return order
    actor = system_user(job="provisioning")
    if order.customer.is_processing_restricted:
        order.status = ProvisioningOrder.Status.HELD
        return save_with_actor(order, actor=actor, reason="Held: the customer's processing is restricted")
    try:
        reference = provisioning_gateway().submit(order)
    except GatewayRejectedError as exc:
        order.status = ProvisioningOrder.Status.FAILED
        order.failure_reason = str(exc)
        return save_with_actor(order, actor=actor, reason="Rejected by the gateway")
    order.status = ProvisioningOrder.Status.SUBMITTED
    order.gateway_reference = reference
    order.submitted_at = timezone.now()
    return save_with_actor(order, actor=actor, reason="Submitted to the gateway")


def access_log_record(
    *, user: User, customer: Customer, action: str, fields: Iterable[str], reason: str
) -> AccessLog:
    """Record a read of personal data. Written even when the surrounding request later fails."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why you need to see this data."})
    entry = AccessLog.objects.create(
        user=user,
        customer=customer,
        customer_reference=customer.reference,
        action=action,
        fields=sorted(set(fields)),
        reason=reason.strip(),
    )
    audit_record(
        actor=user,
        action=f"export.{action}" if action == AccessLog.Action.EXPORT else f"access.{action}",
        target=customer,
        detail={"access_log": entry.pk, "fields": entry.fields},
    )
    alerts.after_access_logged(entry)
    return entry
