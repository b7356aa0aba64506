"""The Site Details change history shows each correction's before and after values: in clear only to a
user who may see the field unmasked right now (the page's own rule), logged like a reveal; masked
otherwise; in a fixed number of queries however long the history."""

import datetime
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import selectors, site_details
from accounts.models import AccessLog, Contact, Customer, Line, PaymentDetails, Role, Site
from accounts.selectors import FieldChange, TimelineEntry
from fusion_site.fields import EncryptedTextField
from tests.factories import ContactFactory, full_customer

CORRECTION = {
    "name": "Janet Smythe",
    "email": "janet.smythe@example.org",
    "phone": "07700 100456",
    "role": "billing",
    "reason": "Customer rang to correct her details",
}
# Every clear value the correction touched, before and after, in the forms the page could print them.
PLAINTEXT = ["Jane Smith", "Janet Smythe", "janet.smythe@example.org", "07700100123", "07700100456"]


def _correct_contact(client, editor, customer, contact, **changes):
    client.force_login(editor)
    response = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/", CORRECTION | changes
    )
    assert response.status_code == 302


def _timeline_html(html: str) -> str:
    return html[html.index("<h2>Change history</h2>") :]


def test_masked_viewer_sees_before_and_after_masked_and_no_plaintext_anywhere(client, make_user, customer):
    contact = customer.contacts.get()
    old_email = contact.email
    _correct_contact(client, make_user(Role.SUPPORT_AGENT), customer, contact)
    # Cleared but not revealing, and never cleared: both see the page masked.
    for viewer in (make_user(Role.SUPPORT_AGENT, cleared=False), make_user(Role.SUPPORT_AGENT)):
        client.force_login(viewer)
        page = client.get(f"/customers/{customer.reference}/")
        html = page.content.decode()
        for value in [*PLAINTEXT, old_email]:
            assert value not in html
        timeline = _timeline_html(html)
        assert re.search(
            r'<span class="field">name</span>: <del>J\*\*\*</del> → <ins>J\*\*\*</ins>', timeline
        )
        assert "<del>j***@e***.com</del> → <ins>j***@e***.org</ins>" in timeline
        assert "<del>07*** ***123</del> → <ins>07*** ***456</ins>" in timeline
        # Fields that are not personal data read in clear.
        assert "<del>primary</del> → <ins>billing</ins>" in timeline
    assert not AccessLog.objects.filter(action=AccessLog.Action.REVEAL).exists()


def test_revealing_shows_history_in_clear_and_logs_it_in_the_reveal_entry(client, make_user, customer):
    contact = customer.contacts.get()
    old_email = contact.email
    _correct_contact(client, make_user(Role.SUPPORT_AGENT), customer, contact)
    viewer = make_user(Role.SUPPORT_AGENT)
    client.force_login(viewer)
    page = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Customer disputes the change"})
    assert page.status_code == 200
    timeline = _timeline_html(page.content.decode())
    assert "<del>Jane Smith</del> → <ins>Janet Smythe</ins>" in timeline
    assert f"<del>{old_email}</del> → <ins>janet.smythe@example.org</ins>" in timeline
    assert "<del>07700100123</del> → <ins>07700100456</ins>" in timeline

    entry = AccessLog.objects.get()
    assert entry.user == viewer
    assert entry.action == AccessLog.Action.REVEAL
    assert entry.reason == "Customer disputes the change"
    assert {"history.contact.name", "history.contact.email", "history.contact.phone"} <= set(entry.fields)
    assert "contact.name" in entry.fields  # the current values, as before
    assert not any(name.startswith("history.payment.") for name in entry.fields)


def test_reveal_with_nothing_corrected_logs_no_history_fields(client, make_user, customer):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Query"})
    assert not [name for name in AccessLog.objects.get().fields if name.startswith("history.")]


def test_portal_user_sees_its_own_history_in_clear_without_an_access_log_entry(client, make_user):
    portal = make_user(Role.CUSTOMER)
    contact = ContactFactory(customer=portal.customer)
    client.force_login(portal)
    response = client.post(
        f"/customers/{portal.customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "Janet Smythe", "email": contact.email, "phone": contact.phone, "role": contact.role},
    )
    assert response.status_code == 302
    timeline = _timeline_html(client.get(f"/customers/{portal.customer.reference}/").content.decode())
    assert "<del>Jane Smith</del> → <ins>Janet Smythe</ins>" in timeline
    assert not AccessLog.objects.exists()


def _entry(*changes: FieldChange) -> TimelineEntry:
    at = datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC)
    return TimelineEntry(at=at, user=None, what="x", change="changed", changes=list(changes))


def test_payment_history_follows_the_payment_gate_not_the_personal_one():
    change = FieldChange("payment.account_number", "66374958", "12345678", encrypted=True)
    holder = FieldChange("payment.superseded_account_holder", "", "Jane Smith", encrypted=True)
    personal_only = site_details.Visibility(personal=True, payment=False)
    rows, logged = site_details.timeline_rows([_entry(change, holder)], personal_only)
    assert [(c.before, c.after) for c in rows[0].changes] == [("****4958", "****5678"), ("", "J***")]
    assert logged == []
    both = site_details.Visibility(personal=True, payment=True)
    rows, logged = site_details.timeline_rows([_entry(change, holder)], both)
    assert [(c.before, c.after) for c in rows[0].changes] == [("66374958", "12345678"), ("", "Jane Smith")]
    assert logged == ["history.payment.account_number", "history.payment.superseded_account_holder"]


def test_an_encrypted_field_the_page_does_not_list_is_still_masked():
    change = FieldChange("site.some_new_note", "Back door code 1234", "Back door code 9999", encrypted=True)
    rows, logged = site_details.timeline_rows(
        [_entry(change)], site_details.Visibility(personal=False, payment=False)
    )
    assert [(c.before, c.after, c.revealed) for c in rows[0].changes] == [("B***", "B***", False)]
    assert logged == []


def test_timeline_queries_stay_constant_with_more_history(client, make_user, partner):
    customer = full_customer(partner, sites=1, lines=1, contacts=1)
    contact = customer.contacts.get()
    editor = make_user(Role.SUPPORT_AGENT)
    viewer = make_user(Role.SUPPORT_AGENT)

    def counts() -> tuple[int, int]:
        client.force_login(viewer)
        client.get("/")
        with CaptureQueriesContext(connection) as masked:
            assert client.get(f"/customers/{customer.reference}/").status_code == 200
        with CaptureQueriesContext(connection) as revealed:
            response = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Query"})
            assert response.status_code == 200
        return len(masked), len(revealed)

    _correct_contact(client, editor, customer, contact)
    few = counts()
    for n in range(8):
        _correct_contact(client, editor, customer, contact, name=f"Janet Smythe {n}", phone=f"07700 10020{n}")
    many = counts()
    assert few == many
    changes = [
        c
        for entry in client.get(f"/customers/{customer.reference}/").context["timeline"]
        for c in entry.changes
    ]
    assert len(changes) == 4 + 8 * 2  # the first correction changes four fields, each later one two


def test_portal_user_reads_staff_changes_and_orders_by_role_and_organisation_never_by_name(client, make_user):
    portal = make_user(Role.CUSTOMER)
    contact = ContactFactory(customer=portal.customer)
    agent = make_user(Role.SUPPORT_AGENT, full_name="Priya Agentname")
    _correct_contact(client, agent, portal.customer, contact)
    client.force_login(biller := make_user(Role.BILLING_AGENT, full_name="Bob Billername"))
    ordered = client.post(
        f"/customers/{portal.customer.reference}/orders/new/", {"kind": "provide", "notes": ""}
    )
    assert ordered.status_code == 302

    client.force_login(portal)
    html = client.get(f"/customers/{portal.customer.reference}/").content.decode()
    by_staff = f"Support agent, {agent.partner.name}"
    assert f"by {by_staff}" in _timeline_html(html)
    assert f"<td>Billing agent, {biller.partner.name}</td>" in html  # the order's "By" column
    for staff in (agent, biller):
        assert staff.full_name not in html and staff.email not in html

    # Staff still see who it was.
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert "Priya Agentname" in _timeline_html(
        client.get(f"/customers/{portal.customer.reference}/").content.decode()
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(["customer", "sites", "contacts", "lines"]), st.integers(0, 3)),
        min_size=1,
        max_size=14,
    ),
    limit=st.integers(min_value=1, max_value=8),
)
def test_each_timeline_entry_names_who_made_that_change_and_the_newest_are_kept(
    partner, make_user, clock, changes, limit
):
    """The actors are read beside the six histories, not after them: however the newest changes fall
    across the histories and their authors, each entry names the user who made that change."""
    customer = full_customer(partner, sites=2, lines=2, contacts=2)
    editors = [make_user(Role.SUPPORT_AGENT) for _ in range(4)]
    for n, (kind, who) in enumerate(changes):
        clock.shift(datetime.timedelta(minutes=1))
        row = customer if kind == "customer" else getattr(customer, kind).order_by("id")[n % 2]
        row._history_user = editors[who]
        if kind == "customer":
            row.name = f"Renamed {n}"
        elif kind == "sites":
            row.town = f"Town {n}"
        elif kind == "contacts":
            row.name = f"Contact {n}"
        else:
            row.end_date = row.start_date + datetime.timedelta(days=n + 1)
        row.save()

    entries = selectors.site_details_page_reads(customer, limit=limit)[1]

    made_by = {}
    dates = []
    for model, label in ((Customer, "Account"), (Site, "Site"), (Contact, "Contact"), (Line, "Line")):
        history = model.history.filter(
            **({"id": customer.pk} if model is Customer else {"customer": customer})
        )
        for record in history:
            what = label if model is Customer else f"{label} #{record.id}"
            made_by[(what, record.history_date)] = record.history_user
            dates.append(record.history_date)
    payment_and_orders = PaymentDetails.history.filter(customer=customer).count()
    assert len(entries) == min(limit, len(dates) + payment_and_orders)
    assert [entry.user for entry in entries if (entry.what, entry.at) in made_by] == [
        made_by[(entry.what, entry.at)] for entry in entries if (entry.what, entry.at) in made_by
    ]
    newest = sorted(dates, reverse=True)[: len(changes)]
    assert [entry.at for entry in entries[: min(limit, len(changes))]] == newest[: min(limit, len(changes))]
    assert {entry.user for entry in entries[: min(limit, len(changes))]} <= set(editors)


def test_the_timeline_decrypts_only_the_values_it_compares(partner, decryptions):
    """History rows are read with their ciphertext: a creation's values are never compared, so they are
    never decrypted; a change decrypts its record's and the previous record's values, once each."""
    customer = full_customer(partner, sites=1, lines=2, contacts=1)
    decrypted = decryptions

    def timeline_decryptions() -> tuple[list[str], list[selectors.TimelineEntry]]:
        """What the page's reads decrypt beyond its current rows (read first, alone, to count them)."""
        decrypted.clear()
        selectors.customer_site_details(customer)
        rows_only = len(decrypted)
        decrypted.clear()
        _rows, entries = selectors.site_details_page_reads(customer)
        return decrypted[rows_only:], entries

    history, created = timeline_decryptions()
    assert history == [] and created and all(entry.change == "created" for entry in created)

    contact = customer.contacts.get()
    contact.name = "Renamed Person"
    contact.save()
    history, entries = timeline_decryptions()

    encrypted = [f for f in Contact.history.model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
    assert len(history) == 2 * len(encrypted) == len(set(history))
    (change,) = [c for entry in entries for c in entry.changes]
    assert (change.name, change.after, change.encrypted) == ("contact.name", "Renamed Person", True)
    assert change.before == Contact.history.filter(id=contact.pk).earliest("history_date").name
