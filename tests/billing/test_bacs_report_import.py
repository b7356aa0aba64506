"""Bacs reports imported into the ledger and the mandates (billing.services.bacs_reports), and the Direct
Debit export putting its collections on the ledger (billing.services.direct_debit): every ARUDD code's
effect on the payment, the invoice and the mandate; every ADDACS code's effect on the mandate; a report
imported twice changing nothing twice; unmatched and other partners' items reported, never applied;
re-presentation once only; a re-submitted run collecting an invoice once. The run and its mandates come
from the services (tests.billing.test_bacs's ``billed``); the clock is frozen by tests/conftest.py."""

import datetime
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts import mandates
from accounts import services as account_services
from accounts.models import AuditEvent, PaymentDetails, Role
from billing.bacs_reports import Action, parse_report
from billing.demo import uk_tariff
from billing.models import (
    BacsReportImport,
    DirectDebitCollection,
    Invoice,
    LedgerEntry,
    PartnerBillingProfile,
    Payment,
)
from billing.services.bacs_reports import bacs_report_import
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from billing.services.ledger import invoice_outstanding
from billing.services.payments import payment_record
from tests.billing import test_bacs, test_bacs_reports
from tests.billing.factories import billing_profile
from tests.billing.test_bacs import ORIGINATOR, make_active, one_off
from tests.factories import full_customer

# The run, its mandates and the bill-run helper come from the Standard 18 tests' fixtures.
billed = test_bacs.billed
finalise = test_bacs.finalise

SUN = ORIGINATOR["bacs_service_user_number"]
PAYING_REFERENCE = "DDM/0001-A"
ARUDD_NAMES = {
    "0": "REFER TO PAYER",
    "1": "INSTRUCTION CANCELLED",
    "2": "PAYER DECEASED",
    "3": "ACCOUNT TRANSFERRED",
    "4": "ADVANCE NOTICE DISPUTED",
    "5": "NO ACCOUNT",
    "6": "NO INSTRUCTION",
    "7": "AMOUNT DIFFERS",
    "8": "AMOUNT NOT YET DUE",
    "9": "PRESENTATION OVERDUE",
    "A": "SERVICE USER DIFFERS",
    "B": "ACCOUNT CLOSED",
}
# What the scheme's special instruction for each ARUDD code does to the mandate (the Bacs tables, as
# restated in tests/billing/test_bacs_reports.py): the instruction is gone, or it stands.
ARUDD_CANCELS = {"1", "2", "3", "5", "6", "B"}
ARUDD_ACTIONS = {
    "0": Action.REPRESENT,
    "4": Action.HOLD_UNTIL_RESOLVED,
    "7": Action.HOLD_UNTIL_RESOLVED,
    "8": Action.HOLD_UNTIL_RESOLVED,
    "9": Action.NEW_ADVANCE_NOTICE,
    "A": Action.CHECK_SERVICE_USER,
    **dict.fromkeys(ARUDD_CANCELS, Action.CANCEL_MANDATE),
}
# Sort code and account pairs that pass (and one that fails) Vocalink's modulus check.
NEW_SORT_CODE, NEW_ACCOUNT = "089999", "66374958"
FAILING_SORT_CODE, FAILING_ACCOUNT = "400515", "34206810"


def _document(child: ElementTree.Element) -> bytes:
    root = ElementTree.Element("BACSDocument")
    ElementTree.SubElement(root, "Data").append(child)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def arudd(
    items: list[dict[str, str]], *, sun: str = SUN, advice: str = "001", day: str = "2026-12-21"
) -> bytes:
    """An ARUDD of these ReturnedDebitItems (attributes over defaults)."""
    element = ElementTree.Element("ARUDD")
    ElementTree.SubElement(element, "Header", currentProcessingDate=day, adviceNumber=advice)
    ElementTree.SubElement(element, "ServiceLicenseInformation", userNumber=sun)
    record = ElementTree.SubElement(
        ElementTree.SubElement(ElementTree.SubElement(element, "Advice"), "OriginatingAccountRecords"),
        "OriginatingAccountRecord",
    )
    for attributes in items:
        ElementTree.SubElement(
            record, "ReturnedDebitItem", {"transCode": "17", "currency": "GBP", **attributes}
        )
    return _document(element)


def returned(
    collection: DirectDebitCollection, code: str, *, reference: str = PAYING_REFERENCE, **extra: str
):
    """The ARUDD item returning ``collection`` with reason ``code``."""
    return {
        "ref": reference,
        "returnCode": code,
        "returnDescription": ARUDD_NAMES[code],
        "originalProcessingDate": collection.processing_date.isoformat(),
        "valueOf": f"{collection.amount_pence // 100}.{collection.amount_pence % 100:02d}",
        **extra,
    }


def addacs(advices: list[dict[str, str]], *, sun: str = SUN, advice: str = "1") -> bytes:
    element = ElementTree.Element("MessagingAdvices")
    ElementTree.SubElement(
        element,
        "MessagingHeader",
        {"user-number": sun, "advice-number": advice, "report-generation-date": "2026-12-01"},
    )
    for attributes in advices:
        ElementTree.SubElement(
            element,
            "MessagingAdvice",
            {"record-type": "A", "reference": PAYING_REFERENCE, "effective-date": "2026-12-01", **attributes},
        )
    return _document(element)


@pytest.fixture
def exported(billed):
    """The run's Direct Debit submission made: its collections on the ledger."""
    submission = direct_debit_export(bill_run=billed.run, actor=billed.finance)
    billed.submission = submission
    billed.collection = DirectDebitCollection.objects.get(invoice__customer=billed.paying)
    billed.invoice = Invoice.objects.get(bill_run=billed.run, customer=billed.paying)
    return billed


def import_(data: bytes, actor, name: str = "report.xml") -> BacsReportImport:
    return bacs_report_import(data=data, filename=name, actor=actor)


def mandate_of(customer) -> PaymentDetails:
    return PaymentDetails.objects.get(customer=customer)


# The export puts its collections on the ledger


def test_the_export_records_a_direct_debit_payment_per_collection_settling_its_invoice(exported):
    collections = list(DirectDebitCollection.objects.filter(submission=exported.submission))
    assert {c.invoice.customer for c in collections} == {exported.paying, exported.exact}
    assert len(collections) == exported.submission.collections
    for collection in collections:
        payment = collection.payment
        assert payment.method == Payment.Method.DIRECT_DEBIT
        assert payment.amount == Decimal(collection.amount_pence) / 100 == collection.invoice.gross
        assert payment.received_on == collection.debit_date
        assert payment.reference.endswith(collection.invoice.number)
        assert invoice_outstanding(collection.invoice) == 0
        entry = LedgerEntry.objects.filter(payment=payment, kind="payment").get()
        assert entry.amount == -payment.amount
        assert entry.actor == exported.finance
        (event,) = AuditEvent.objects.filter(
            action="ledger.payment", target_type="billing.ledgerentry", target_id=str(entry.pk)
        )
        assert event.detail == {"customer": payment.customer_id, "amount": str(entry.amount)}
    assert sum(c.amount_pence for c in collections) == exported.submission.total_pence


def test_a_cancelled_and_resubmitted_run_collects_and_records_each_invoice_once(exported):
    first = exported.submission
    direct_debit_submission_cancel(submission=first, actor=exported.finance, reason="Not sent")

    assert set(DirectDebitCollection.objects.filter(submission=first).values_list("outcome", flat=True)) == {
        "cancelled"
    }
    assert invoice_outstanding(exported.invoice) == exported.invoice.gross
    assert LedgerEntry.objects.filter(payment=exported.collection.payment, kind="unpaid_reversal").exists()

    second = direct_debit_export(bill_run=exported.run, actor=exported.finance)
    again = direct_debit_export(bill_run=exported.run, actor=exported.finance)  # the same file, no new rows

    assert again.pk == second.pk
    live = DirectDebitCollection.objects.exclude(outcome="cancelled")
    assert sorted(live.values_list("invoice_id", flat=True)) == sorted(
        DirectDebitCollection.objects.filter(submission=first).values_list("invoice_id", flat=True)
    )
    assert live.count() == second.collections == 2
    assert invoice_outstanding(exported.invoice) == 0
    # Net of reversals, one payment per invoice.
    unreversed = Payment.objects.filter(customer=exported.paying).exclude(
        ledger_entries__kind="unpaid_reversal"
    )
    assert unreversed.count() == 1


def test_the_database_refuses_a_second_live_collection_of_an_invoice(exported):
    row = exported.collection
    payment = payment_record(
        customer=exported.paying,
        method=Payment.Method.DIRECT_DEBIT,
        amount=Decimal("1.00"),
        received_on=datetime.date(2026, 11, 30),
        actor=exported.finance,
        allocate=False,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitCollection.objects.create(
            submission=row.submission,
            invoice=row.invoice,
            customer=row.customer,
            mandate_id=row.mandate_id,
            payment=payment,
            amount_pence=100,
            processing_date=row.processing_date,
            debit_date=row.debit_date,
            transaction_code="17",
        )


# ARUDD


@pytest.mark.parametrize("code", sorted(ARUDD_NAMES))
def test_each_arudd_code_reverses_the_payment_and_takes_the_schemes_action(exported, code):
    collection = exported.collection
    report = import_(arudd([returned(collection, code)]), exported.finance)

    assert (report.kind, report.applied, report.rejected) == ("ARUDD", 1, 0)
    collection.refresh_from_db()
    reversal = LedgerEntry.objects.get(payment=collection.payment, kind="unpaid_reversal")
    assert reversal.amount == collection.payment.amount
    assert f"ARUDD {code}" in reversal.reason
    assert reversal.effective_on == datetime.date(2026, 12, 21)
    assert invoice_outstanding(exported.invoice) == exported.invoice.gross
    assert (collection.outcome, collection.returned_reason_code) == ("returned", code)
    assert collection.action == ARUDD_ACTIONS[code]
    mandate = mandate_of(exported.paying)
    if code in ARUDD_CANCELS:
        assert (mandate.status, mandate.cancelled_by_bank) == ("cancelled", True)
        assert f"ARUDD {code}" in mandate.cancellation_reason
        assert mandate.history.filter(history_user=exported.finance, status="cancelled").exists()
    else:
        assert mandate.status == "active"
    # Refer to payer: re-presented within a month of the original processing day (by 16 Jan for 16 Dec).
    if code == "0":
        processed = collection.processing_date
        assert collection.representation_due_by == processed.replace(
            year=processed.year + (processed.month == 12), month=processed.month % 12 + 1
        )
    else:
        assert collection.representation_due_by is None
    # The other customer's collection is untouched.
    exact = DirectDebitCollection.objects.get(invoice__customer=exported.exact)
    assert exact.outcome == "" and not exact.payment.ledger_entries.filter(kind="unpaid_reversal").exists()


def test_a_re_presentation_returned_again_is_not_re_presented(exported):
    original = exported.collection
    import_(arudd([returned(original, "0")]), exported.finance)
    original.refresh_from_db()
    assert original.action == Action.REPRESENT and original.representation_due_by is not None
    # The re-presentation (transaction code 18) is collected and comes back "refer to payer" again.
    payment = payment_record(
        customer=exported.paying,
        method=Payment.Method.DIRECT_DEBIT,
        amount=exported.invoice.gross,
        received_on=datetime.date(2026, 11, 30),
        actor=exported.finance,
    )
    representation = DirectDebitCollection.objects.create(
        submission=original.submission,
        invoice=original.invoice,
        customer=original.customer,
        mandate_id=original.mandate_id,
        payment=payment,
        amount_pence=original.amount_pence,
        processing_date=original.processing_date + datetime.timedelta(days=14),
        debit_date=original.debit_date + datetime.timedelta(days=14),
        transaction_code="18",
        represents=original,
    )
    # Even when the bank quotes the original transaction code, our record says it was re-presented.
    report = import_(arudd([returned(representation, "0")], advice="002"), exported.finance)

    representation.refresh_from_db()
    assert report.applied == 1
    assert representation.action == Action.RECOVER_OUTSIDE_DIRECT_DEBIT
    assert representation.representation_due_by is None
    assert mandate_of(exported.paying).status == "active"
    # And the database holds one re-presentation per collection.
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitCollection.objects.create(
            submission=original.submission,
            invoice=original.invoice,
            customer=original.customer,
            mandate_id=original.mandate_id,
            payment=payment_record(
                customer=exported.paying,
                method=Payment.Method.DIRECT_DEBIT,
                amount=Decimal("1.00"),
                received_on=datetime.date(2026, 11, 30),
                actor=exported.finance,
            ),
            amount_pence=100,
            processing_date=original.processing_date,
            debit_date=original.debit_date,
            transaction_code="18",
            represents=original,
        )


def test_a_re_presentation_code_18_from_the_bank_is_not_re_presented_either(exported):
    import_(arudd([returned(exported.collection, "0", transCode="18")]), exported.finance)
    exported.collection.refresh_from_db()
    assert exported.collection.action == Action.RECOVER_OUTSIDE_DIRECT_DEBIT
    assert exported.collection.representation_due_by is None


def test_a_report_imported_twice_changes_nothing_twice(exported):
    data = arudd([returned(exported.collection, "1")])
    import_(data, exported.finance)
    entries = LedgerEntry.objects.count()
    history = PaymentDetails.history.count()

    with pytest.raises(ValidationError, match="already imported"):
        import_(data, exported.finance, name="renamed.xml")
    # The same item in another report (another advice number) is recognised as done.
    again = import_(arudd([returned(exported.collection, "1")], advice="002"), exported.finance)

    assert (again.applied, again.already_applied, again.rejected) == (0, 1, 0)
    assert LedgerEntry.objects.count() == entries
    assert PaymentDetails.history.count() == history
    assert BacsReportImport.objects.count() == 2


def test_an_unmatched_item_is_a_line_error_naming_it_and_the_others_apply(exported):
    wrong_amount = {**returned(exported.collection, "1"), "valueOf": "999.99"}
    report = import_(
        arudd(
            [
                wrong_amount,
                returned(exported.collection, "4"),
                {**returned(exported.collection, "1"), "ref": "NOSUCH0001"},
            ]
        ),
        exported.finance,
    )

    assert (report.items, report.applied, report.rejected) == (3, 1, 2)
    reasons = list(report.errors.values_list("reason", flat=True))
    assert reasons[0].startswith("item 1 (ref ending 01-A): no Direct Debit of \u00a3999.99 processed on")
    assert reasons[1].startswith("item 3 (ref ending 0001): no Direct Debit")
    assert all(line is not None for line in report.errors.values_list("line_number", flat=True))
    exported.collection.refresh_from_db()
    assert exported.collection.returned_reason_code == "4"


@pytest.mark.parametrize("name", ["arudd-sample.xml", "addacs-sample.xml"])
def test_the_published_samples_name_every_item_they_cannot_match_and_drop_none(exported, name):
    """The shipped samples' references are not this partner's: every item is reported, none applied."""
    data = (test_bacs_reports.DATA / name).read_bytes()
    parsed = parse_report(data)
    entries, history = LedgerEntry.objects.count(), PaymentDetails.history.count()

    report = import_(data, exported.finance, name=name)

    assert report.items == len(parsed.items) + len(parsed.errors) > 0
    assert (report.applied, report.already_applied, report.rejected) == (0, 0, report.items)
    assert sorted(line or 0 for line in report.errors.values_list("line_number", flat=True)) == sorted(
        i.line or 0 for i in parsed.items
    )
    assert (LedgerEntry.objects.count(), PaymentDetails.history.count()) == (entries, history)


def test_a_malformed_item_is_kept_as_a_line_error(exported):
    report = import_(arudd([{**returned(exported.collection, "1"), "valueOf": "12.x"}]), exported.finance)
    assert (report.applied, report.rejected) == (0, 1)
    assert "valueOf" in report.errors.get().reason


def test_another_partners_collection_and_mandate_are_never_matched(
    exported, other_partner, make_user, finalise
):
    billing_profile(other_partner, default_tariff=uk_tariff())
    PartnerBillingProfile.objects.filter(partner=other_partner).update(
        **{**ORIGINATOR, "bacs_service_user_number": "654321"}
    )
    other_finance = make_user(Role.FINANCE_MANAGER, partner=other_partner)
    theirs = full_customer(other_partner)
    account_services.payment_details_set(
        customer=theirs,
        actor=other_finance,
        account_holder="Other Payer",
        sort_code="10-79-99",
        account_number="88837491",
        mandate_reference="OTHER0001",
    )
    one_off(theirs, "10.00", other_finance)
    make_active(theirs, other_finance)
    run = finalise(of=other_partner)
    direct_debit_export(bill_run=run, actor=other_finance)
    their_collection = DirectDebitCollection.objects.get(invoice__customer=theirs)

    # Our finance manager's reports name their reference, date and amount exactly.
    unpaid = import_(arudd([returned(their_collection, "1", reference="OTHER0001")]), exported.finance)
    advice = import_(addacs([{"reference": "OTHER0001", "reason-code": "1"}]), exported.finance)

    assert (unpaid.rejected, advice.rejected) == (1, 1)
    assert "no Direct Debit" in unpaid.errors.get().reason
    assert "no mandate of this partner" in advice.errors.get().reason
    their_collection.refresh_from_db()
    assert their_collection.outcome == ""
    assert not LedgerEntry.objects.filter(customer=theirs, kind="unpaid_reversal").exists()
    assert mandate_of(theirs).status == "active"
    # Nor may our finance manager import their partner's report, nor name their partner.
    with pytest.raises(ValidationError, match="service user number 654321"):
        import_(
            arudd([returned(their_collection, "1", reference="OTHER0001")], sun="654321"), exported.finance
        )
    with pytest.raises(PermissionDenied):
        bacs_report_import(data=b"", filename="x.xml", actor=exported.finance, partner=other_partner)


def test_a_user_without_the_permission_may_not_import(exported, agent):
    with pytest.raises(PermissionDenied):
        import_(arudd([returned(exported.collection, "1")]), agent)
    assert not BacsReportImport.objects.exists()


def test_a_file_that_is_not_a_report_is_refused_whole(exported):
    with pytest.raises(ValidationError):
        import_(b"<html/>", exported.finance)
    assert not BacsReportImport.objects.exists()


# ADDACS


@pytest.mark.parametrize("code", ["0", "1", "2", "B"])
def test_addacs_cancellations_cancel_the_mandate_as_by_the_bank(exported, code):
    report = import_(addacs([{"reason-code": code}]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert report.applied == 1
    assert (mandate.status, mandate.cancelled_by_bank) == ("cancelled", True)
    assert f"ADDACS {code}" in mandate.cancellation_reason
    assert mandate.history.first().history_user == exported.finance


@pytest.mark.parametrize("code", ["C", "E"])
def test_addacs_amendments_set_the_new_account_and_keep_collecting(exported, code):
    advice = {
        "reason-code": code,
        "payer-new-sort-code": NEW_SORT_CODE,
        "payer-new-account-number": NEW_ACCOUNT,
    }
    report = import_(addacs([advice]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert report.applied == 1
    assert (mandate.sort_code.replace("-", ""), mandate.account_number) == (NEW_SORT_CODE, NEW_ACCOUNT)
    assert mandate.status == "active"
    assert mandate.mandate_reference == "ddm/0001-a"
    assert mandate.history.first().history_user == exported.finance
    # The same advice again changes nothing.
    again = import_(addacs([advice], advice="2"), exported.finance)
    assert (again.applied, again.already_applied) == (0, 1)


def test_an_amendment_failing_the_modulus_check_is_the_items_error(exported):
    advice = {
        "reason-code": "C",
        "payer-new-sort-code": FAILING_SORT_CODE,
        "payer-new-account-number": FAILING_ACCOUNT,
    }
    report = import_(addacs([advice]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert (report.applied, report.rejected) == (0, 1)
    assert report.errors.get().reason.startswith("item 1 (ref ending 01-A):")
    assert mandate.account_number == "34206819"


def test_an_instruction_amended_without_new_details_changes_no_account(exported):
    report = import_(addacs([{"reason-code": "E"}]), exported.finance)
    assert report.applied == 1
    assert mandate_of(exported.paying).account_number == "34206819"


def test_addacs_3_with_new_details_moves_the_mandate_to_be_lodged_at_the_new_bank(exported):
    advice = {
        "reason-code": "3",
        "payer-new-sort-code": NEW_SORT_CODE,
        "payer-new-account-number": NEW_ACCOUNT,
    }
    import_(addacs([advice]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert mandate.status == "new"  # its 0N goes in the next submission
    assert (mandate.account_number, mandate.cancelled_by_bank) == (NEW_ACCOUNT, False)
    assert mandate.cancellation_submission_id is None  # no 0C to the old bank
    assert list(mandate.history.values_list("status", flat=True)[:2]) == ["new", "cancelled"]


def test_addacs_3_without_new_details_cancels_the_mandate(exported):
    import_(addacs([{"reason-code": "3"}]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert (mandate.status, mandate.cancelled_by_bank) == ("cancelled", True)


def test_addacs_d_holds_and_is_recorded_without_changing_the_mandate(exported):
    report = import_(addacs([{"reason-code": "D"}]), exported.finance)
    assert report.applied == 1
    assert mandate_of(exported.paying).status == "active"


def test_addacs_r_reinstates_within_two_months_of_the_cancellation_and_not_after(exported, clock):
    mandates.mandate_cancel(
        mandate=mandate_of(exported.paying), actor=exported.finance, reason="ADDACS 1", by_bank=True
    )
    late = import_(addacs([{"reason-code": "R", "effective-date": "2027-02-01"}]), exported.finance)
    assert late.rejected == 1 and "more than two months" in late.errors.get().reason
    assert mandate_of(exported.paying).status == "cancelled"

    report = import_(
        addacs([{"reason-code": "R", "effective-date": "2027-01-29"}], advice="2"), exported.finance
    )
    assert report.applied == 1
    mandate = mandate_of(exported.paying)
    assert (mandate.status, mandate.cancelled_by_bank) == ("new", False)
    # Reinstating one that stands is nothing to do.
    assert import_(addacs([{"reason-code": "R"}], advice="3"), exported.finance).already_applied == 1


# Doors


def test_the_finance_manager_uploads_a_report_and_sees_its_errors(client, exported):
    client.force_login(exported.finance)
    data = arudd(
        [returned(exported.collection, "1"), {**returned(exported.collection, "1"), "ref": "NOSUCH0001"}]
    )
    upload = SimpleUploadedFile("arudd.xml", data, content_type="application/xml")
    response = client.post("/billing/bacs-reports/", {"file": upload})
    report = BacsReportImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/billing/bacs-reports/{report.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "item 2 (ref ending 0001): no Direct Debit" in page
    assert report.report_id in page
    listing = client.get("/billing/bacs-reports/").content.decode()
    assert f"/billing/bacs-reports/{report.pk}/" in listing


def test_the_page_names_a_refused_file(client, exported):
    client.force_login(exported.finance)
    upload = SimpleUploadedFile("arudd.xml", arudd([], sun="999999"))
    response = client.post("/billing/bacs-reports/", {"file": upload})
    assert response.status_code == 200
    assert "service user number 999999" in response.content.decode()
    assert not BacsReportImport.objects.exists()


def test_the_command_imports_with_progress_and_lists_the_items_not_applied(exported, tmp_path, capsys):
    path = tmp_path / "arudd.xml"
    path.write_bytes(
        arudd([returned(exported.collection, "1"), {**returned(exported.collection, "1"), "ref": "X9"}])
    )
    call_command("import_bacs_report", str(path), "--user", exported.finance.email)
    out, err = capsys.readouterr()
    assert "1 applied, 0 already applied, 1 not applied" in out
    assert "item 2 (ref ending X9): no Direct Debit" in err
    assert "Importing" in err
    assert mandate_of(exported.paying).status == "cancelled"
