"""The personal data of accounts' models (and of the login and admin tables accounts runs): what each holds,
how a customer's rows are found, erased or kept, and for how long (``fusion_site.personal_data``).

The statements run in this order after billing's and privacy's (whose rows find the customer's through
these): the admin log first (it finds its rows through the history of sites, contacts, lines, mandates and
orders), login attempts before the portal users' emails are anonymised, name hashes before the contacts
they index, grants before the users, and the history of lines last (billing's statements read it to find
every call of every line the customer ever had).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from axes.models import AccessAttempt
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    DateField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, Greatest
from django.utils import timezone
from guardian.models import UserObjectPermission

from accounts.models import (
    AccessLog,
    Contact,
    Customer,
    CustomerUserObjectPermission,
    DirectDebitNotice,
    Line,
    NameToken,
    PaymentDetails,
    ProvisioningOrder,
    Site,
    User,
)
from fusion_site.crypto import encrypt
from fusion_site.personal_data import (
    Anchor,
    Category,
    CustomerChecks,
    Declaration,
    Erase,
    ErasureAction,
    Kept,
    LawfulBasis,
    LegalObligation,
    PersonalField,
    Purge,
    Retention,
    Subject,
    first_owner,
    start_of_day_after,
)

ERASED_TEXT = "(erased)"
# A password starting with "!" never verifies (Django's unusable password).
ERASED_PASSWORD = "!erased"  # noqa: S105

ACCOUNTABILITY = LegalObligation(
    "Accountability and security of processing",
    "UK GDPR Art. 5(2) and 32: the record of who read personal data, kept 2 years",
)
ACCOUNT_DATA = Retention("1 month after the contract ends", Anchor.CONTRACT_END, 1, policy="customer_account")
LOGIN_ACCOUNT = Retention("1 month after the login account is closed", Anchor.ACCOUNT_CLOSED, 1)
ACCESS_LOGS = Retention("2 years from the entry", Anchor.CREATED, 24, policy="access_logs")
# The admin's own log: nothing deletes it yet (its entries are scrubbed when their customer is erased).
ADMIN_LOG = Retention("2 years from the entry", Anchor.CREATED, 24)
LOGIN_ATTEMPTS = Retention(
    "until the lockout's cool-off ends or an administrator unlocks (kept at most 1 month)", Anchor.CREATED, 1
)
SESSIONS = Retention("2 weeks from login", Anchor.CREATED, 1)

C, ID, SVC, FIN = Category.CONTACT, Category.IDENTITY, Category.SERVICE, Category.FINANCIAL


def _changes(values: dict[str, Any]) -> Any:
    return lambda ids, now: values


def _of_customers(manager: Any) -> Any:
    return lambda ids: manager.filter(customer_id__in=ids)


def lines_ever(customer_ids: Sequence[int]) -> QuerySet[Any]:
    """Every line the customers ever had (the history keeps lines deleted since), to find their calls."""
    return Line.history.filter(customer_id__in=customer_ids)


def line_owner(customer_ids: Sequence[int], column: str = "line_id") -> Any:
    """The customer whose line (by ``column``, a line id) a row belongs to, through the lines' history."""
    return first_owner(lines_ever(customer_ids).filter(id=OuterRef(column)))


def portal_users(customer_ids: Sequence[int]) -> QuerySet[User]:
    return User.objects.filter(customer_id__in=customer_ids)


def erased_name(customer_pk: int) -> str:
    return f"Erased customer {Customer.reference_of(customer_pk)}"


def erased_names(customer_ids: Sequence[int], column: str) -> Case:
    """Each customer's placeholder name, "Erased customer C-000123", for the rows whose ``column`` is its
    id. Encrypted here, as SQL cannot encrypt: one ciphertext per customer, written to every row of it in
    the same statement, so the queries still do not depend on the number of customers or rows."""
    return Case(
        *(When(**{column: pk}, then=Value(encrypt(erased_name(pk)))) for pk in customer_ids),
        output_field=TextField(),
    )


def _erased_email() -> Concat:
    return Concat(
        Value("erased-"), Cast("id", CharField()), Value("@erased.invalid"), output_field=CharField()
    )


# The admin log names the changed record: found through the history of the customer's records (their ids
# as the log's text object ids), so before any of that history goes.
_LOGGED_MODELS = (Site, Contact, Line, PaymentDetails, ProvisioningOrder)


def _admin_entries(customer_ids: Sequence[int]) -> QuerySet[LogEntry]:
    content_types = ContentType.objects.get_for_models(Customer, *_LOGGED_MODELS)
    entries = Q(content_type=content_types[Customer], object_id__in=[str(pk) for pk in customer_ids])
    for model in _LOGGED_MODELS:
        entries |= Q(content_type=content_types[model], object_id__in=_history_ids(model, customer_ids))
    return LogEntry.objects.filter(entries)


def _history_ids(model: Any, customer_ids: Sequence[int]) -> QuerySet[Any]:
    return (
        model.history.filter(customer_id__in=customer_ids)
        .annotate(text_id=Cast("id", TextField()))
        .values("text_id")
    )


def _admin_owner(customer_ids: Sequence[int]) -> Case:
    content_types = ContentType.objects.get_for_models(Customer, *_LOGGED_MODELS)
    whens = [When(content_type=content_types[Customer], then=Cast("object_id", BigIntegerField()))]
    for model in _LOGGED_MODELS:
        history = model.history.filter(customer_id__in=customer_ids).annotate(text_id=Cast("id", TextField()))
        whens.append(
            When(
                content_type=content_types[model],
                then=first_owner(history.filter(text_id=OuterRef("object_id"))),
            )
        )
    return Case(*whens, output_field=BigIntegerField())


def _login_attempts(label: str, erasure: tuple[Erase, ...] = ()) -> Declaration:
    return Declaration(
        label,
        "people who tried to log in (staff, portal users, attackers)",
        "Lock out repeated failed logins by username and by address (security of processing)",
        ErasureAction.DELETE,
        (LOGIN_ATTEMPTS,),
        LawfulBasis.LEGITIMATE_INTERESTS,
        (
            PersonalField("username", Category.TECHNICAL, "Which account was tried"),
            PersonalField("ip_address", Category.TECHNICAL, "Where the attempts came from"),
        ),
        recipients=("hosting",),
        erasure=erasure,
    )


def _account_declaration(
    model: Any,
    subjects: str,
    purpose: str,
    fields: tuple[PersonalField, ...],
    recipients: tuple[str, ...],
    note: str,
    history_note: str = "",
    before: tuple[Erase, ...] = (),
) -> Declaration:
    """A model of the customer's account deleted with it (a month after the contract ends, or on request):
    ``before`` (rows hanging from it), its rows by ``customer_id``, and its history's when it has one."""
    erasure = [*before, Erase(_of_customers(model.objects), note)]
    if history_note:
        erasure.append(Erase(_of_customers(model.history), history_note))
    return Declaration(
        model._meta.label,
        subjects,
        purpose,
        ErasureAction.DELETE,
        (ACCOUNT_DATA,),
        LawfulBasis.CONTRACT,
        fields,
        recipients,
        erasure=tuple(erasure),
        of_customer=lambda customer: model.objects.filter(customer=customer),
    )


def _anonymise_customers(
    customer_ids: list[int], *, now: datetime.datetime, actor: User, reason: str
) -> None:
    """The account rows stay, anonymised and marked erased: one UPDATE, then their history rows as the
    database now holds them, attributed to ``actor`` with ``reason``.

    Not ``full_clean``: it would query per customer, and every value is valid by construction (the check
    constraints, which the database enforces anyway, hold: a reason stays wherever a date does, and the
    contract never ends before it starts)."""
    today = timezone.localdate()
    Customer.objects.filter(pk__in=customer_ids).update(
        name=erased_names(customer_ids, "pk"),
        billing_ceased_reason=Case(
            When(billing_ceased_at__isnull=True, then=Value("")), default=Value(ERASED_TEXT)
        ),
        processing_restricted_reason=Case(
            When(processing_restricted_at__isnull=True, then=Value("")), default=Value(ERASED_TEXT)
        ),
        status=Customer.Status.ENDED,
        # An open or future contract ends today (or on its start, if that is later).
        contract_end=Case(
            When(
                Q(contract_end__isnull=True) | Q(contract_end__gt=today),
                then=Greatest(Value(today), F("contract_start")),
            ),
            default=F("contract_end"),
            output_field=DateField(),
        ),
        erased_at=now,
        updated_at=now,
    )
    Customer.history.bulk_history_create(
        list(Customer.objects.filter(pk__in=customer_ids).order_by("pk")),
        update=True,
        default_user=actor,
        default_change_reason=reason,
        default_date=now,
    )


def _warnings(customer: Customer) -> list[str]:
    today = timezone.localdate()
    warnings = []
    active_lines = Line.objects.filter(customer=customer).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=today)
    )
    if count := active_lines.count():
        warnings.append(
            f"{count} line(s) still active: erasure deletes them here but sends no cease order to the "
            "wholesale provider; cease them first if the service must stop."
        )
    in_flight = ProvisioningOrder.objects.filter(
        customer=customer,
        status__in=[
            ProvisioningOrder.Status.QUEUED,
            ProvisioningOrder.Status.HELD,
            ProvisioningOrder.Status.SUBMITTED,
        ],
    )
    if count := in_flight.count():
        warnings.append(
            f"{count} provisioning order(s) not finished; they are deleted unsent or unconfirmed."
        )
    if customer.contract_end is None or customer.contract_end > today:
        warnings.append("The contract has not ended; erasure ends it today.")
    return warnings


def _raw_delete(queryset: QuerySet[Any]) -> int:
    # No signals, no cascade collection, no "deleted" history row that would copy the data once more.
    return int(queryset._raw_delete(queryset.db))


def _grants(model: Any, note: str) -> Erase:
    return Erase(
        lambda ids: model.objects.filter(user__in=portal_users(ids).values("pk")),
        note,
        owner="user__customer_id",
    )


_CUSTOMER_REASONS = ("billing_ceased_reason", "processing_restricted_reason")

DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "admin.LogEntry",
        "staff; the customers whose records they changed",
        "The admin's own record of changes",
        ErasureAction.ANONYMISE,
        (ADMIN_LOG,),
        LawfulBasis.LEGITIMATE_INTERESTS,
        (
            PersonalField(
                "object_repr", Category.TECHNICAL, "Names the changed record (a customer's name, say)"
            ),
            PersonalField("change_message", Category.TECHNICAL, "Which fields changed"),
        ),
        erasure=(
            Erase(
                _admin_entries,
                "Admin change log: the record's name and change message",
                _changes({"object_repr": ERASED_TEXT, "change_message": ""}),
                ~Q(object_repr=ERASED_TEXT),
                owner=_admin_owner,
            ),
        ),
    ),
    # Login attempts name the portal users by email: before their emails are anonymised below.
    _login_attempts(
        "axes.AccessAttempt",
        (
            Erase(
                lambda ids: AccessAttempt.objects.filter(username__in=portal_users(ids).values("email")),
                "Failed login attempts of the portal users",
                owner=lambda ids: first_owner(portal_users(ids).filter(email=OuterRef("username"))),
            ),
        ),
    ),
    _login_attempts("axes.AccessFailureLog"),
    _login_attempts("axes.AccessLog"),
    _account_declaration(
        ProvisioningOrder,
        "end customers",
        "Order, change and cease lines with the wholesale provider",
        (
            PersonalField("notes", SVC, "What staff told the gateway (free text)"),
            PersonalField("failure_reason", SVC, "What the gateway answered"),
        ),
        ("hosting", "wholesale"),
        "Provisioning orders",
        "History of provisioning orders",
    ),
    _account_declaration(
        PaymentDetails,
        "account holders of the customer's bank account",
        "Collect payment by Direct Debit",
        (
            PersonalField("account_holder", FIN, "Direct Debit mandate"),
            PersonalField("sort_code", FIN, "Direct Debit mandate"),
            PersonalField("account_number", FIN, "Direct Debit mandate"),
            PersonalField("mandate_reference", FIN, "Direct Debit mandate"),
            # The instruction replaced by a change of bank details, kept until its 0C is sent.
            PersonalField("superseded_account_holder", FIN, "Direct Debit mandate"),
            PersonalField("superseded_sort_code", FIN, "Direct Debit mandate"),
            PersonalField("superseded_account_number", FIN, "Direct Debit mandate"),
            PersonalField("superseded_mandate_reference", FIN, "Direct Debit mandate"),
        ),
        ("hosting", "bacs"),
        "Direct Debit mandate",
        "History of the Direct Debit mandate",
        # Before the mandates they hang from (no database constraint, so no cascade): an amount and a
        # date told to the payer, which the kept invoice states anyway.
        before=(
            Erase(
                lambda ids: DirectDebitNotice.objects.filter(mandate__customer_id__in=ids),
                "Advance notices of Direct Debit collections",
                owner="mandate__customer_id",
            ),
        ),
    ),
    # Before the contacts they point at go.
    _account_declaration(
        NameToken,
        "end customers and people at the customer",
        "Let staff find a customer by a word of its name or of a contact's name (both encrypted)",
        (
            PersonalField(
                "name_index",
                ID,
                "Blind index (keyed hash) of one word of a customer's or contact's name; rebuilt when the "
                "name changes",
            ),
        ),
        ("hosting",),
        "Name search index: keyed hashes of the words of the account's and its contacts' names",
    ),
    _account_declaration(
        Contact,
        "people at the customer",
        "Reach the customer about its account, faults and bills, and recover what it owes (debt recovery "
        "notices: the contract and Art. 6(1)(f) legitimate interests in recovering a debt; service messages, "
        "not marketing, so sent despite an objection to billing)",
        (
            PersonalField("name", C, "Whom to ask for"),
            PersonalField("email", C, "Bills, service messages and debt recovery notices"),
            PersonalField("email_index", C, "Blind index to find a customer by email"),
            PersonalField("phone", C, "Calls about faults and bills"),
            PersonalField("phone_index", C, "Blind index to find a customer by phone"),
        ),
        ("hosting", "mail"),
        "Contacts (names, emails, phones, blind indexes)",
        "History of contacts",
    ),
    Declaration(
        "accounts.Line",
        "end customers",
        "Provide the telephone service and match calls to the customer",
        ErasureAction.DELETE,
        (ACCOUNT_DATA,),
        LawfulBasis.CONTRACT,
        (
            PersonalField("cli", SVC, "The line's number"),
            PersonalField("cli_index", SVC, "Blind index to match calls and searches to the line"),
        ),
        ("hosting", "wholesale"),
        erasure=(
            Erase(_of_customers(Line.objects), "Lines (numbers and blind indexes)"),
            # Last: other statements read the line history (calls of lines since deleted, the admin log).
            Erase(lines_ever, "History of lines", last=True),
        ),
        of_customer=lambda customer: Line.objects.filter(customer=customer),
    ),
    _account_declaration(
        Site,
        "end customers",
        "Premises where lines are installed and where bills are addressed",
        (
            PersonalField("address_line1", SVC, "Installation and billing address"),
            PersonalField("address_line2", SVC, "Installation and billing address"),
            PersonalField("town", SVC, "Installation and billing address"),
            PersonalField("postcode", SVC, "Installation and billing address; line availability checks"),
            PersonalField("postcode_index", SVC, "Blind index to find a customer by postcode"),
        ),
        ("hosting", "wholesale"),
        "Sites (addresses, postcodes, blind indexes)",
        "History of sites",
    ),
    Declaration(
        "accounts.User",
        "staff of the provider and partners; customers' portal users",
        "Log in and act in the back office or the customer portal",
        ErasureAction.ANONYMISE,
        (LOGIN_ACCOUNT,),
        LawfulBasis.CONTRACT,
        (
            PersonalField("email", Category.ACCOUNT, "Login name and where account mail goes"),
            PersonalField("full_name", ID, "Names the person in the pages and the audit trail"),
            PersonalField(
                "password", Category.ACCOUNT, "Salted hash to check the login; made unusable on erasure"
            ),
            PersonalField(
                "last_login",
                Category.TECHNICAL,
                "Spot dormant and misused accounts",
                LawfulBasis.LEGITIMATE_INTERESTS,
            ),
        ),
        ("hosting", "mail"),
        erasure=(
            _grants(CustomerUserObjectPermission, "Portal users' grants on the customer"),
            _grants(UserObjectPermission, "Portal users' other grants"),
            _grants(User.groups.through, "Portal users' roles"),
            _grants(User.user_permissions.through, "Portal users' permissions"),
            Erase(
                portal_users,
                "Portal users: deactivated; name, email and password removed",
                lambda ids, now: {
                    "email": _erased_email(),
                    "full_name": "",
                    "password": ERASED_PASSWORD,
                    "is_active": False,
                    "last_login": None,
                },
                ~Q(full_name="") | Q(is_active=True),
            ),
            Erase(
                lambda ids: User.history.filter(id__in=portal_users(ids).values("pk")),
                "History of portal users: name and email",
                lambda ids, now: {"email": _erased_email(), "full_name": ""},
                ~Q(full_name=""),
                owner=lambda ids: first_owner(portal_users(ids).filter(pk=OuterRef("id"))),
            ),
        ),
    ),
    Declaration(
        "accounts.Customer",
        "end customers (sole traders and partnerships are natural persons)",
        "Keep the customer's account and bill it",
        ErasureAction.ANONYMISE,
        (ACCOUNT_DATA,),
        LawfulBasis.CONTRACT,
        (
            PersonalField("name", ID, "The account's trading name, which may be a person's name"),
            PersonalField("billing_ceased_reason", ID, "Why billing was ceased on objection (free text)"),
            PersonalField("processing_restricted_reason", ID, "Why processing is restricted (free text)"),
        ),
        ("hosting",),
        # The account row itself is anonymised by the Subject below, after every statement.
        erasure=(
            Erase(
                lambda ids: Customer.history.filter(id__in=ids),
                "History of the account: name and free-text reasons",
                lambda ids, now: {
                    "name": erased_names(ids, "id"),
                    **{
                        name: Case(When(**{name: ""}, then=Value("")), default=Value(ERASED_TEXT))
                        for name in _CUSTOMER_REASONS
                    },
                },
                # The encrypted name cannot be compared in SQL: what is left to scrub is every version
                # written before the customer was erased (or since, should anyone have edited it after).
                Q(
                    Exists(
                        Customer.objects.filter(pk=OuterRef("id")).filter(
                            Q(erased_at__isnull=True) | Q(erased_at__lt=OuterRef("history_date"))
                        )
                    )
                ),
                owner="id",
            ),
        ),
        of_customer=lambda customer: Customer.objects.filter(pk=customer.pk),
    ),
    Declaration(
        "accounts.AccessLog",
        "staff who read personal data; the customers whose data they read",
        "Show who read which personal data, when and why",
        ErasureAction.KEEP,
        (ACCESS_LOGS,),
        LawfulBasis.LEGAL_OBLIGATION,
        (
            PersonalField("customer_reference", Category.TECHNICAL, "Which account was read"),
            PersonalField("reason", Category.TECHNICAL, "Why the staff member needed to read it"),
        ),
        ("hosting",),
        kept_under=ACCOUNTABILITY,
        kept=Kept(_of_customers(AccessLog.objects), "Who read the customer's data, when and why (no values)"),
        purge=Purge(
            due=lambda cutoff, held: AccessLog.objects.filter(at__lt=start_of_day_after(cutoff)),
            run=lambda ids, due: {AccessLog._meta.label: _raw_delete(AccessLog.objects.filter(pk__in=ids))},
            preview=lambda ids: {AccessLog._meta.label: len(ids)},
            what="entries of {cutoff} or earlier",
        ),
    ),
    Declaration(
        "sessions.Session",
        "logged-in users",
        "Keep a user logged in",
        ErasureAction.DELETE,
        (SESSIONS,),
        LawfulBasis.CONTRACT,
        (
            PersonalField(
                "session_data",
                Category.TECHNICAL,
                "Signed session state (user id); expires on its own, and a deactivated user's session no "
                "longer authenticates. With Redis configured a copy is read from its cache, which expires "
                "with the session",
            ),
        ),
    ),
)

SUBJECT = Subject(Customer, _anonymise_customers, "The account")
CHECKS = CustomerChecks(warnings=_warnings)
