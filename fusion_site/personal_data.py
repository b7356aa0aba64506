"""Personal data declarations: each app says, for each of its models that holds personal data, what it holds
and how the rows of given customers are found, erased or kept, under which law, for how long.

The idea is Sentry's deletion registry (each model declares how it is deleted; a generic job runs the
declarations), kept within the layering: this module knows no app. Each app declares its own models in
``<app>/personal_data.py`` and registers them from its ``AppConfig.ready()``; ``privacy`` reads them all to
build the data map and the Record of Processing, to preview and carry out erasure, to run retention and to
answer access and portability requests, and names no other app's tables itself.

A ``Declaration`` is one model. Its ``erasure`` is the list of set-based statements that erase the model's
rows of given customers (the model's own rows, its history, the link rows that go with them), each an
``Erase`` that deletes a queryset or updates it: a statement's query never depends on how many rows or
customers there are. ``kept`` counts what erasure keeps under a law. ``purge`` is what the retention job
runs on rows past their period. Apps register in layer order (accounts, billing, privacy); erasure runs the
statements of the highest app first, since its rows point at lower apps' rows and find them through them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import BigIntegerField, Exists, Q, QuerySet, Subquery
from django.db.models.expressions import BaseExpression
from django.utils import timezone


class Category(models.TextChoices):
    CONTACT = "contact", "Contact details"
    IDENTITY = "identity", "Identity"
    FINANCIAL = "financial", "Financial and payment"
    TRAFFIC = "traffic", "Traffic data (calls)"
    SERVICE = "service", "Service and location (lines, premises)"
    MARKETING = "marketing", "Marketing"
    RECRUITMENT = "recruitment", "Recruitment"
    ACCOUNT = "account", "Login account"
    TECHNICAL = "technical", "Technical and log"


class LawfulBasis(models.TextChoices):
    CONTRACT = "contract", "Contract (Art. 6(1)(b))"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (Art. 6(1)(c))"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests (Art. 6(1)(f))"
    CONSENT = "consent", "Consent (Art. 6(1)(a))"


class Anchor(models.TextChoices):
    """The date a retention period counts from."""

    CONTRACT_END = "contract_end", "end of the customer's contract"
    INVOICE_ISSUE = "invoice_issue", "issue of the invoice or credit note"
    CALL_DATE = "call_date", "date of the call"
    CREATED = "created", "creation of the record"
    ACCOUNT_CLOSED = "account_closed", "closure of the login account"
    REQUEST_CLOSED = "request_closed", "completion, rejection or withdrawal of the privacy request"
    PROCESSING_DAY = "processing_day", "Bacs processing day of the Direct Debit file"
    DECISION = "decision", "decision on the job application"
    UNSUBSCRIBED = "unsubscribed", "unsubscribe from the mailing list"


class ErasureAction(models.TextChoices):
    DELETE = "delete", "Delete"
    ANONYMISE = "anonymise", "Anonymise"
    KEEP = "keep", "Keep (legal obligation)"


@dataclass(frozen=True)
class Retention:
    """How long rows are kept: ``months`` from ``anchor``. ``policy`` is the key of the retention policy
    (``privacy.RetentionPolicy``, seeded by the migrations) whose job enforces it; empty when nothing but
    the data's own expiry does."""

    text: str
    anchor: Anchor
    months: int
    policy: str = ""


@dataclass(frozen=True)
class LegalObligation:
    name: str
    citation: str


@dataclass(frozen=True)
class PersonalField:
    name: str
    category: Category
    purpose: str
    basis: LawfulBasis | None = None  # the declaration's when None


Owner = str | Callable[[Sequence[int]], BaseExpression]


@dataclass(frozen=True)
class Erase:
    """One set-based statement of erasure: delete ``rows(customer_ids)``, or update it with ``changes``."""

    rows: Callable[[Sequence[int]], QuerySet[Any]]
    note: str
    # None deletes; otherwise the values to write, given the customers' ids and the erasure's time.
    changes: Callable[[Sequence[int], datetime.datetime], Mapping[str, Any]] | None = None
    # Only rows that still hold something to scrub count, so a second run reports zero.
    still_personal: Q | None = None
    # Whose row it is: a column, or an expression (given the customers' ids) yielding the customer's id.
    owner: Owner = "customer_id"
    # Runs after every other statement: the others find their rows through this one's.
    last: bool = False


@dataclass(frozen=True)
class Kept:
    """What erasure keeps of a customer under ``Declaration.kept_under``: ``rows`` counted per ``owner``,
    kept until ``Declaration.retention`` after the latest ``anchor_field`` (no date when empty)."""

    rows: Callable[[Sequence[int]], QuerySet[Any]]
    what: str
    owner: str = "customer_id"
    anchor_field: str = ""


@dataclass(frozen=True)
class Purge:
    """What the retention job of ``Retention.policy`` does: ``due(cutoff, held)`` is the rows whose anchor
    is on or before ``cutoff``, except those of the ``held`` customers (a queryset of customer ids);
    ``run(ids, due)`` removes (or anonymises) those rows with what goes with them and returns rows per table;
    ``preview(ids)`` gives the same counts without changing anything (a dry run)."""

    due: Callable[[datetime.date, QuerySet[Any]], QuerySet[Any]]
    run: Callable[[list[int], QuerySet[Any]], dict[str, int]]
    preview: Callable[[list[int]], dict[str, int]]
    what: str  # "calls billed or made on or before {cutoff}"
    action: ErasureAction = ErasureAction.DELETE
    # Whole blocks of due rows removed at once before the rows one by one (the call records' months on
    # PostgreSQL, dropped as partitions): ``blocks(cutoff, held)``.
    blocks: Callable[[datetime.date, QuerySet[Any]], list[PurgeBlock]] | None = None


@dataclass(frozen=True)
class PurgeBlock:
    """A block of rows all past their period, removed in one step: ``run()`` does it (in the caller's
    transaction) and returns rows per table; ``preview()`` counts them without changing anything."""

    what: str
    run: Callable[[], dict[str, int]]
    preview: Callable[[], dict[str, int]]


@dataclass(frozen=True)
class Declaration:
    model: str  # "app.Model"
    subjects: str
    purpose: str
    action: ErasureAction
    retention: tuple[Retention, ...]
    basis: LawfulBasis
    fields: tuple[PersonalField, ...] = ()
    recipients: tuple[str, ...] = ()
    kept_under: LegalObligation | None = None
    kept: Kept | None = None
    erasure: tuple[Erase, ...] = ()
    purge: Purge | None = None
    # Rows of a customer as the subject's own copy reads them (access and portability); none when absent.
    of_customer: Callable[[Any], QuerySet[Any]] | None = None

    def __post_init__(self) -> None:
        if (self.action == ErasureAction.KEEP) != (self.kept_under is not None):
            raise ValueError(f"{self.model}: a kept model names the law that keeps it, and only a kept one.")
        if not self.retention:
            raise ValueError(f"{self.model}: say how long its rows are kept.")


@dataclass(frozen=True)
class KeepReason:
    """Why the retention job keeps a customer past its period: ``exists`` is true (for ``OuterRef("pk")``,
    a customer) while the reason lasts; ``why`` is its code in the run's record, ``detail`` its words."""

    why: str
    exists: Exists
    detail: str


@dataclass(frozen=True)
class CustomerChecks:
    """What an app knows about erasing a customer beyond its rows: ``blockers(ids)`` gives, per customer,
    what stops erasure now; ``warnings(customer)`` what the approver should read first; ``keep(today)``
    why the retention job must not erase a customer yet (erasure would refuse, or money may be owed)."""

    blockers: Callable[[Collection[int]], dict[int, list[str]]] | None = None
    warnings: Callable[[Any], list[str]] | None = None
    keep: Callable[[datetime.date], list[KeepReason]] | None = None


@dataclass(frozen=True)
class Subject:
    """The model whose rows are the customers themselves, and how erasure anonymises them: the row stays
    (invoices and logs name it), marked erased, its history written by ``actor`` with ``reason``."""

    model: Any  # the model class (its DoesNotExist is raised for a missing customer)
    anonymise: Callable[..., None]  # (customer_ids, *, now, actor, reason)
    note: str


@dataclass
class _Registry:
    declarations: dict[str, Declaration] = field(default_factory=dict)
    groups: list[tuple[Declaration, ...]] = field(default_factory=list)
    checks: list[CustomerChecks] = field(default_factory=list)
    subject: Subject | None = None


_REGISTRY = _Registry()


def register(*declarations: Declaration) -> None:
    """Declare one app's models' personal data, in the order its erasure statements run; a model is
    declared once (registering the same group again, as a second ``ready()`` would, changes nothing)."""
    if declarations in _REGISTRY.groups:
        return
    for declaration in declarations:
        if declaration.model in _REGISTRY.declarations:
            raise ValueError(f"{declaration.model} is declared twice.")
        _REGISTRY.declarations[declaration.model] = declaration
    _REGISTRY.groups.append(declarations)


def register_subject(subject: Subject) -> None:
    if _REGISTRY.subject is not None and _REGISTRY.subject != subject:
        raise ValueError("The customers' model is declared twice.")
    _REGISTRY.subject = subject


def subject() -> Subject:
    if _REGISTRY.subject is None:
        raise LookupError("No app declared the customers' model (register_subject).")
    return _REGISTRY.subject


def register_checks(checks: CustomerChecks) -> None:
    if checks not in _REGISTRY.checks:
        _REGISTRY.checks.append(checks)


def declarations() -> tuple[Declaration, ...]:
    """Every declaration, in the order the apps registered them (lowest layer first)."""
    return tuple(_REGISTRY.declarations.values())


def declaration(model: str) -> Declaration | None:
    return _REGISTRY.declarations.get(model)


def customer_checks() -> tuple[CustomerChecks, ...]:
    return tuple(_REGISTRY.checks)


def first_owner(queryset: QuerySet[Any], column: str = "customer_id") -> Subquery:
    """The customer id of the first row of ``queryset`` (a correlated subquery), for an ``owner``."""
    return Subquery(queryset.order_by(column).values(column)[:1], output_field=BigIntegerField())


def start_of_day_after(day: datetime.date) -> datetime.datetime:
    """Midnight (UK time) at the end of ``day``: timestamps before it fall on ``day`` or earlier."""
    return timezone.make_aware(datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min))


def erasure_statements() -> list[Erase]:
    """Every erasure statement in the order to run: the last registered app's first (the highest layer:
    its rows find theirs through lower apps' rows), each app's in its declared order, and those marked
    ``last`` at the end."""
    ordered = [s for group in reversed(_REGISTRY.groups) for item in group for s in item.erasure]
    return [s for s in ordered if not s.last] + [s for s in ordered if s.last]
