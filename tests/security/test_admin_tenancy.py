"""The admin is scoped exactly like the pages, through every door it has.

Every registered ModelAdmin is walked (``admin.site._registry``); every URL it serves (changelist, add,
change, delete, history, history form and revert, actions, autocomplete) is requested, GET and POST, by
partner A's billing agent, support agent and finance manager, with partner B's ids: in the URL, and in
every form field that links to a partner-owned row. Which rows are partner-owned is found here from the
models' foreign keys (a chain of them that reaches Partner), independently of the code under test, so a
new admin, model or field is covered without touching this file.

Expected: nothing of B's is saved or changed, B's objects answer 403 or 404, B's ids posted in a form are
refused (403, or the page again with an error on that field), and no response carries B's names,
references, numbers or other values.
"""

import datetime
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.db.models import Model
from django.forms import MultiWidget
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.admin_scoping import ScopedFormFieldsMixin, TenantScopedAdmin
from accounts.models import AccessLog, Customer, Partner, PaymentDetails, Role, User
from billing.demo import uk_tariff
from billing.models import CreditNote
from billing.services.bacs_reports import bacs_report_import
from billing.services.charges import recurring_charge_create
from billing.services.credit_notes import credit_note_issue
from billing.services.direct_debit import direct_debit_export
from billing.services.dunning import dunning_run
from billing.services.ledger import write_off_request
from billing.services.payments import payment_record
from billing.services.tariffs import customer_set_tariff, line_set_tariff
from privacy.models import ErasureRecord
from tests.billing.test_bacs import make_active
from tests.billing.test_bacs_report_import import arudd, returned
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    LineFactory,
    PartnerFactory,
    PaymentDetailsFactory,
    SiteFactory,
    UserFactory,
)
from tests.security.world import World, build_world

PARTNER_ROLES = [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER]

B_PARTNER_NAME = "Bravo Hidden Telecom"
B_PARTNER_CODE = "bravo-hidden"
B_CUSTOMER_NAME = "Zanzibar Quietly Holdings"
B_SECOND_CUSTOMER_NAME = "Xylophone Unseen Traders"
B_EMAIL = "bravo.secret@example.com"
B_CLI = "0113 496 0777"
B_ADDRESS = "77 Bravo Secret Street"
B_POSTCODE = "SW1A 1AA"
B_TARIFF_NAME = "Bravo private tariff"
B_CHARGE = "Bravo secret rental"
B_PAYMENT_REFERENCE = "BRAVOPAYREF"


# Ownership, found from the models ---------------------------------------------------------------------


def _partner_path(model: type[Model], depth: int = 4) -> str | None:
    """The shortest chain of forward foreign keys from ``model`` to Partner, not through the links to users
    that name who acted (created_by); a user's own partner link counts."""
    if model is Partner:
        return "pk"
    paths: list[tuple[type[Model], str]] = [(model, "")]
    for _ in range(depth):
        following = []
        for current, prefix in paths:
            for field in current._meta.concrete_fields:
                related = field.related_model
                if not (field.many_to_one or field.one_to_one) or related is None:
                    continue
                if related is User and current is not User:
                    continue
                path = f"{prefix}__{field.name}" if prefix else field.name
                if related is Partner:
                    return path
                following.append((related, path))
        paths = following
    return None


def _rows_of(model: type[Model], partner: Partner) -> Any:
    path = _partner_path(model)
    assert path is not None
    return model._default_manager.filter(**{path: partner.pk}).order_by("-pk")


def _linking_fields(model: type[Model]) -> list[Any]:
    """The model's editable foreign keys and many-to-many fields that lead to partner-owned rows."""
    return [
        field
        for field in [*model._meta.concrete_fields, *model._meta.many_to_many]
        if field.is_relation
        and field.related_model is not None
        and _partner_path(field.related_model) is not None
    ]


# Partner B's world, with values to look for --------------------------------------------------------------


@pytest.fixture
def other_partner(db):
    return PartnerFactory(name=B_PARTNER_NAME, code=B_PARTNER_CODE)


@pytest.fixture
def other_customer(other_partner):
    customer = CustomerFactory(partner=other_partner, name=B_CUSTOMER_NAME)
    site = SiteFactory(customer=customer, address_line1=B_ADDRESS, postcode=B_POSTCODE, label="Bravo depot")
    ContactFactory(customer=customer, email=B_EMAIL, name="Bravo Person")
    LineFactory(customer=customer, site=site, cli=B_CLI)
    PaymentDetailsFactory(customer=customer, account_holder="Bravo Holder")
    return customer


def _partner_rows(customer: Customer, actor: User, *, tariff_name: str, charge: str) -> None:
    """The rows of a partner that build_world does not make: its own tariff and assignments, a recurring
    charge, a provisioning order, a credit note, an access log entry, an erasure record."""
    partner = customer.partner
    tariff = uk_tariff(name=tariff_name, partner=partner)
    line = customer.lines.order_by("pk").first()
    customer_set_tariff(customer=customer, tariff=tariff, actor=actor)
    line_set_tariff(line=line, tariff=tariff, actor=actor)
    recurring_charge_create(
        customer=customer,
        line=line,
        description=charge,
        monthly_amount=Decimal("12.50"),
        start_date=datetime.date(2025, 1, 1),
        actor=actor,
    )
    account_services.provisioning_order_create(customer=customer, kind="modify", line=line, actor=actor)
    account_services.access_log_record(
        user=actor, customer=customer, action=AccessLog.Action.REVEAL, fields=["contact.email"], reason="Call"
    )
    ErasureRecord.objects.create(
        customer_pk=customer.pk,
        customer_reference=customer.reference,
        partner=partner,
        actor=actor,
        reason="Test",
        erased_at=datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC),
    )
    # Assignments refuse a second tariff for a customer or line: the ids posted are of rows still free.
    bare = CustomerFactory(partner=partner, name=charge.replace("rental", "customer"))
    LineFactory(customer=bare)


@pytest.fixture
def world(customer, other_customer) -> World:
    built = build_world(customer, other_customer)
    own_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=customer.partner)
    other_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=other_customer.partner)
    for invoice, finance in ((built.invoice, own_finance), (built.other_invoice, other_finance)):
        credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill", net=Decimal("1"))
        # The ledger's rows: a payment settling part of the invoice (an allocation) and a write-off asked for.
        assert invoice.customer is not None
        payment_record(
            customer=invoice.customer,
            method="bank_transfer",
            amount=Decimal("1.00"),
            received_on=datetime.date(2025, 3, 1),
            reference=B_PAYMENT_REFERENCE if finance is other_finance else "ALPHAPAYREF",
            actor=finance,
        )
        write_off_request(invoice=invoice, amount=Decimal("0.50"), reason="Small balance", actor=finance)
        _collected_and_returned(invoice, finance)
    _partner_rows(customer, own_finance, tariff_name="Alpha own tariff", charge="Alpha rental")
    _partner_rows(other_customer, other_finance, tariff_name=B_TARIFF_NAME, charge=B_CHARGE)
    CustomerFactory(partner=other_customer.partner, name=B_SECOND_CUSTOMER_NAME)
    # Dunning steps for every partner, and the actions they took for the unpaid invoices.
    dunning_run(today=timezone.localdate(), actor=UserFactory(role=Role.ADMINISTRATOR))
    return built


def _collected_and_returned(invoice: Any, finance: User) -> None:
    """The rest of the invoice collected by Direct Debit (a collection), then returned unpaid by an ARUDD
    that also holds an item matching nothing (a report imported, with its line error), so the invoice is
    owed again for dunning; all through the services."""
    assert invoice.customer is not None and invoice.bill_run is not None
    make_active(invoice.customer, finance)
    direct_debit_export(bill_run=invoice.bill_run, actor=finance)
    collection = invoice.direct_debit_collections.get()
    items = [
        returned(
            collection, "1", reference=PaymentDetails.objects.get(pk=collection.mandate_id).mandate_reference
        )
    ]
    items.append(returned(collection, "1", reference="NOSUCHMANDATE"))
    report = bacs_report_import(
        data=arudd(items, sun="123456", advice=str(900 + finance.pk)), filename="arudd.xml", actor=finance
    )
    assert (report.applied, report.errors.count()) == (1, 1)


def _secrets(world: World) -> list[str]:
    b = world.other_customer
    invoice = world.other_invoice
    line = b.lines.order_by("pk").first()
    return [
        B_PARTNER_NAME,
        B_PARTNER_CODE,
        B_CUSTOMER_NAME,
        B_SECOND_CUSTOMER_NAME,
        b.reference,
        *[customer.reference for customer in Customer.objects.filter(partner=b.partner)],
        B_EMAIL,
        line.cli,
        B_CLI,
        B_CLI.replace(" ", ""),
        B_ADDRESS,
        B_POSTCODE,
        B_TARIFF_NAME,
        B_CHARGE,
        B_PAYMENT_REFERENCE,
        invoice.number,
        *CreditNote.objects.filter(invoice=invoice).values_list("number", flat=True),
    ]


# Requests ---------------------------------------------------------------------------------------------


def _url(model: type[Model], view: str, *args: Any) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)
    except NoReverseMatch:
        return None


def _form_data(response: Any) -> dict[str, Any]:
    """What the page's form would post unchanged: its fields' values and empty inline formsets."""
    context = response.context if response.status_code == 200 and response.context else None
    if context is None or "adminform" not in context:
        return {}
    data: dict[str, Any] = {}
    for bound in context["adminform"].form:
        value = bound.value()
        widget = bound.field.widget
        if isinstance(widget, MultiWidget):
            parts = value if isinstance(value, list | tuple) else widget.decompress(value)
            for index, part in enumerate(parts):
                data[f"{bound.html_name}_{index}"] = "" if part is None else part
        elif value is None or value is False:
            continue
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [str(item) for item in value]
        else:
            data[bound.html_name] = value
    for inline in context.get("inline_admin_formsets", []):
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return data


def _form_fields(response: Any) -> set[str]:
    context = response.context if response.status_code == 200 and response.context else None
    if context is None or "adminform" not in context:
        return set()
    return set(context["adminform"].form.fields)


def _field_refused(response: Any, field_name: str) -> bool:
    if response.status_code in {403, 404}:
        return True
    if response.status_code != 200 or not response.context or "adminform" not in response.context:
        return False
    return field_name in response.context["adminform"].form.errors


def _counts() -> Counter[str]:
    from django.apps import apps

    return Counter({model._meta.label: model._default_manager.count() for model in apps.get_models()})


class Probe:
    """One role's walk through the admin; every surprise is noted, and the test asserts there are none."""

    def __init__(self, client: Any, user: User, world: World) -> None:
        self.client, self.user, self.world = client, user, world
        self.secrets = _secrets(world)
        self.partner_b = world.other_customer.partner
        self.partner_a = world.customer.partner
        self.problems: list[str] = []
        # (model, field) of every form field that was offered B's id and had to refuse it.
        self.refusals_checked: set[tuple[str, str]] = set()

    def note(self, what: str) -> None:
        self.problems.append(what)

    def request(self, method: str, url: str, data: dict[str, Any] | None = None, *, echoes: str = "") -> Any:
        """Make the request and look for B's values in the answer (except ``echoes``, the search term
        the page repeats back in its search box)."""
        response = getattr(self.client, method)(url, data or {})
        body = response.content.decode(errors="replace") + response.get("Location", "")
        if echoes:
            body = body.replace(echoes, "")
        leaked = [secret for secret in self.secrets if secret and secret in body]
        if leaked:
            self.note(
                f"{method.upper()} {url} {data or ''} ({response.status_code}) shows partner B's {leaked}"
            )
        if response.status_code >= 500:
            self.note(f"{method.upper()} {url} failed with {response.status_code}")
        return response

    def post_unsaved(self, url: str, data: dict[str, Any]) -> Any:
        before = _counts()
        response = self.request("post", url, data)
        after = _counts()
        if after != before:
            changed = {label for label in after | before if after[label] != before[label]}
            self.note(f"POST {url} changed the number of rows of {sorted(changed)}")
        return response

    def b_id(self, model: type[Model]) -> Any:
        row = _rows_of(model, self.partner_b).first()
        return None if row is None else row.pk

    def walk(self, model: type[Model], model_admin: admin.ModelAdmin) -> None:
        owned = _partner_path(model) is not None
        changelist = _url(model, "changelist")
        assert changelist is not None
        self.request("get", changelist)
        for term in (B_CUSTOMER_NAME, self.world.other_customer.reference, B_PARTNER_NAME, B_EMAIL):
            self.request("get", changelist, {"q": term}, echoes=term)
        self.posts_b_ids_to_the_add_form(model)
        self.autocompletes(model)
        if owned:
            self.posts_b_ids_into_own_rows(model)
            for row in _rows_of(model, self.partner_b)[:2]:
                self.cannot_reach(model, model_admin, row)

    def posts_b_ids_to_the_add_form(self, model: type[Model]) -> None:
        add = _url(model, "add")
        if add is None:
            return
        page = self.request("get", add)
        base, fields = _form_data(page), _form_fields(page)
        for field in _linking_fields(model):
            b_id = self.b_id(field.related_model)
            if b_id is None:
                continue
            data = {**base, field.name: [b_id] if field.many_to_many else b_id}
            response = self.post_unsaved(add, data)
            if page.status_code == 200 and field.name in fields:
                self.refusals_checked.add((model._meta.label, field.name))
                if not _field_refused(response, field.name):
                    self.note(f"POST {add} accepted partner B's {field.name} ({response.status_code})")
            elif page.status_code != 200 and response.status_code not in {403, 404}:
                self.note(
                    f"POST {add} answered {response.status_code} where its page answered {page.status_code}"
                )

    def posts_b_ids_into_own_rows(self, model: type[Model]) -> None:
        """Partner A's own row, changed or reverted with B's ids: a field the form has refuses them; one it
        does not have (read-only) ignores them. Either way the row keeps its links."""
        own = _rows_of(model, self.partner_a).first()
        if own is None:
            return
        before = model._default_manager.filter(pk=own.pk).values().get()
        change = _url(model, "change", own.pk)
        history_form = self._latest_history_url(model, own)
        for url in filter(None, (change, history_form)):
            page = self.request("get", url)
            base, fields = _form_data(page), _form_fields(page)
            for field in _linking_fields(model):
                b_id = self.b_id(field.related_model)
                if b_id is None:
                    continue
                data = {**base, field.name: [b_id] if field.many_to_many else b_id}
                response = self.request("post", url, data)
                if field.name in fields and not _field_refused(response, field.name):
                    self.note(f"POST {url} accepted partner B's {field.name} ({response.status_code})")
                if page.status_code != 200 and response.status_code not in {403, 404}:
                    self.note(f"POST {url} answered {response.status_code}, its page {page.status_code}")
                now = model._default_manager.filter(pk=own.pk).values().get()
                if not field.many_to_many and now[field.attname] != before[field.attname]:
                    self.note(f"POST {url} changed partner A's {model._meta.label}.{field.name}")

    def _latest_history_url(self, model: type[Model], row: Model) -> str | None:
        history = getattr(model, "history", None)
        if history is None or not hasattr(history, "filter"):
            return None
        version = history.filter(pk=row.pk).order_by("-history_id").first()
        return None if version is None else _url(model, "simple_history", row.pk, version.history_id)

    def cannot_reach(self, model: type[Model], model_admin: admin.ModelAdmin, row: Model) -> None:
        before = model._default_manager.filter(pk=row.pk).values().get()
        urls = [
            _url(model, "change", row.pk),
            _url(model, "delete", row.pk),
            _url(model, "history", row.pk),
            self._latest_history_url(model, row),
        ]
        for url in filter(None, urls):
            for method, data in (("get", {}), ("post", {"post": "yes"})):
                response = self.post_unsaved(url, data) if method == "post" else self.request("get", url)
                if response.status_code not in {403, 404}:
                    self.note(f"{method.upper()} {url} of partner B's row answered {response.status_code}")
        request = RequestFactory().get("/")
        request.user = self.user
        changelist = _url(model, "changelist")
        assert changelist is not None
        for action in model_admin.get_actions(request):
            self.post_unsaved(
                changelist, {"action": action, "_selected_action": [row.pk], "index": 0, "post": "yes"}
            )
        after = model._default_manager.filter(pk=row.pk).values().first()
        if after != before:
            self.note(f"partner B's {model._meta.label} {row.pk} was changed or deleted")

    def autocompletes(self, model: type[Model]) -> None:
        for field in _linking_fields(model):
            target_admin = admin.site._registry.get(field.related_model)
            if target_admin is None or not target_admin.search_fields:
                continue
            b_ids = {
                str(pk) for pk in _rows_of(field.related_model, self.partner_b).values_list("pk", flat=True)
            }
            for term in ("", B_CUSTOMER_NAME, B_TARIFF_NAME, self.world.other_customer.reference):
                response = self.request(
                    "get",
                    "/admin/autocomplete/",
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field.name,
                        "term": term,
                    },
                    echoes=term,
                )
                if response.status_code == 200:
                    offered = {item["id"] for item in response.json()["results"]}
                    if offered & b_ids:
                        self.note(f"autocomplete of {model._meta.label}.{field.name} offers partner B's rows")


@pytest.mark.parametrize("role", PARTNER_ROLES, ids=str)
def test_partner_staff_reach_nothing_of_another_partner_through_any_admin_door(
    client, make_user, world, role
):
    user = make_user(role)
    client.force_login(user)
    probe = Probe(client, user, world)

    for model, model_admin in admin.site._registry.items():
        probe.walk(model, model_admin)

    assert probe.problems == [], "\n".join(probe.problems)
    if role == Role.BILLING_AGENT:
        # The walk is not vacuous: the doors of the issue were among those tried.
        assert {
            ("billing.OneOffCharge", "customer"),
            ("billing.RecurringCharge", "customer"),
            ("billing.RecurringCharge", "line"),
            ("billing.CustomerTariff", "tariff"),
            ("billing.LineTariff", "line"),
            ("accounts.Line", "site"),
            ("accounts.Contact", "customer"),
        } <= probe.refusals_checked


def test_the_walk_reaches_partner_b_through_every_linking_model(world):
    """The walk above would pass vacuously if partner B had no rows: every partner-owned model that is
    registered, or that a registered form links to, has some (except the partner-less ones listed)."""
    partner_b = world.other_customer.partner
    linked = {field.related_model for model in admin.site._registry for field in _linking_fields(model)} | {
        model for model in admin.site._registry if _partner_path(model) is not None
    }
    # Devices are administrators' (the only role with their permissions); no device of B's staff exists.
    without_rows = {model._meta.label for model in linked if not _rows_of(model, partner_b).exists()}

    assert without_rows <= {"otp_totp.TOTPDevice", "otp_static.StaticDevice"}


def test_every_admin_and_inline_of_partner_owned_rows_is_tenant_scoped():
    """Scoping lives in the shared base classes: an admin or inline that bypasses them fails here even
    before the walk finds what it leaks."""
    unscoped = []
    for model, model_admin in admin.site._registry.items():
        links_owned = _partner_path(model) is not None or bool(_linking_fields(model))
        if links_owned and not isinstance(model_admin, TenantScopedAdmin):
            unscoped.append(model._meta.label)
        for inline in model_admin.inlines:
            assert issubclass(inline, InlineModelAdmin)
            if not issubclass(inline, ScopedFormFieldsMixin):
                unscoped.append(f"{model._meta.label} inline {inline.__name__}")

    assert unscoped == []


def test_own_rows_stay_reachable(client, make_user, world):
    """The other side of the walk: partner A's own rows are listed and open (a scope of nothing would
    pass the walk)."""
    client.force_login(make_user(Role.BILLING_AGENT))
    own = world.customer
    charge = own.recurring_charges.get()
    pages = {
        "customer list": client.get("/admin/accounts/customer/"),
        "charge": client.get(f"/admin/billing/recurringcharge/{charge.pk}/change/"),
        "charge history": client.get(f"/admin/billing/recurringcharge/{charge.pk}/history/"),
        "invoice list": client.get("/admin/billing/invoice/"),
    }

    assert {name: response.status_code for name, response in pages.items()} == dict.fromkeys(pages, 200)
    assert own.name in pages["customer list"].content.decode()
    assert world.invoice.number in pages["invoice list"].content.decode()


def test_history_form_offers_only_own_rows(client, make_user, world):
    client.force_login(make_user(Role.BILLING_AGENT))
    assignment = world.customer.tariff_assignment
    version = assignment.history.order_by("-history_id").first()

    response = client.get(f"/admin/billing/customertariff/{assignment.pk}/history/{version.history_id}/")

    assert response.status_code == 200
    choices = response.context["adminform"].form.fields["tariff"].choices
    offered = {str(value) for value, _ in choices if str(value)}
    assert str(world.customer.tariff_assignment.tariff_id) in offered
    b_tariffs = {
        str(pk)
        for pk in _rows_of(type(assignment.tariff), world.other_customer.partner).values_list("pk", flat=True)
    }
    assert offered & b_tariffs == set()


# The ledger's, Direct Debit's and dunning's admins, door by door (the walk above covers them too; this
# names each and checks that partner A's own rows are there, so an admin scoped to nothing fails).
LEDGER_ADMINS = [
    "billing.Payment",
    "billing.LedgerEntry",
    "billing.PaymentAllocation",
    "billing.WriteOff",
    "billing.DirectDebitCollection",
    "billing.BacsReportImport",
    "billing.BacsReportImportError",
    "billing.DunningStep",
    "billing.DunningAction",
]


def test_the_ledger_dunning_and_bacs_admins_show_only_the_partners_own_rows(client, make_user, world):
    from django.apps import apps

    client.force_login(make_user(Role.FINANCE_MANAGER))
    partner_a, partner_b = world.customer.partner, world.other_customer.partner
    seen: dict[str, tuple[Any, ...]] = {}
    for label in LEDGER_ADMINS:
        model = apps.get_model(label)
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, TenantScopedAdmin)
        own, theirs = _rows_of(model, partner_a).first(), _rows_of(model, partner_b).first()
        assert own is not None and theirs is not None, label
        listed = client.get(_url(model, "changelist"))
        shown = set(listed.context["cl"].result_list.values_list("pk", flat=True))
        has_history = _url(model, "history", theirs.pk)
        doors = [client.get(_url(model, "change", theirs.pk)), client.get(has_history)]
        doors.append(client.post(_url(model, "change", theirs.pk), {}))
        before = model._default_manager.filter(pk=theirs.pk).values().get()
        seen[label] = (
            listed.status_code,
            own.pk in shown,
            theirs.pk in shown,
            [door.status_code for door in doors],
            client.get(_url(model, "change", own.pk)).status_code,
            client.get(_url(model, "history", own.pk)).status_code,
            model._default_manager.filter(pk=theirs.pk).values().get() == before,
        )

    assert seen == dict.fromkeys(LEDGER_ADMINS, (200, True, False, [404, 404, 404], 200, 200, True))


@pytest.mark.parametrize(
    "label",
    [
        "billing.LedgerEntry",
        "billing.PaymentAllocation",
        "billing.DirectDebitCollection",
        "billing.BacsReportImport",
        "billing.BacsReportImportError",
        "billing.DunningAction",
    ],
)
def test_the_immutable_rows_are_read_only_in_the_admin(rf, make_user, label):
    from django.apps import apps

    request = rf.get("/")
    request.user = make_user(Role.ADMINISTRATOR)
    model_admin = admin.site._registry[apps.get_model(label)]

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
