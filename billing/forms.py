import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from accounts.forms import SiteChoiceField
from accounts.models import Customer, Line, Partner, Site, User
from accounts.selectors import VIEW_ALL_CUSTOMERS
from billing.bacs_reports import MAX_REPORT_BYTES
from billing.dunning_models import DunningStepKind
from billing.models import Invoice, Payment, Product
from billing.selectors import products_offered
from billing.services.bill_runs import unfinished_usage_period
from billing.services.billing_cease import BackBillPolicy
from fusion_site.money import MONEY_DIGITS


class BillRunForm(forms.Form):
    month = forms.DateField(
        widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        input_formats=["%Y-%m", "%Y-%m-%d"],
        help_text="The month of usage to bill.",
    )

    def clean_month(self) -> datetime.date:
        start = self.cleaned_data["month"].replace(day=1)
        unfinished = unfinished_usage_period(self._end_of(start), today=timezone.localdate())
        if unfinished:
            raise forms.ValidationError(f"Usage month: {unfinished}")
        return start

    @staticmethod
    def _end_of(start: datetime.date) -> datetime.date:
        next_month = (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        return next_month - datetime.timedelta(days=1)

    def period(self) -> tuple[datetime.date, datetime.date]:
        start = self.cleaned_data["month"]
        return start, self._end_of(start)


class ApproveForm(forms.Form):
    """Approval of a run; with exceptions, the approver ticks that they reviewed the number shown."""

    exceptions_seen = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)
    acknowledge_exceptions = forms.BooleanField(required=False)

    def exceptions_acknowledged(self) -> int | None:
        if not self.is_valid() or not self.cleaned_data["acknowledge_exceptions"]:
            return None
        seen: int | None = self.cleaned_data["exceptions_seen"]
        return seen


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)


class CreditNoteForm(forms.Form):
    net = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        required=False,
        min_value=0,
        help_text="Leave empty to credit in full.",
    )
    reason = forms.CharField(max_length=500)


class CallImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with columns cli, dialled_number, start_time, duration, call_type, call_reference."
    )

    MAX_BYTES = 200 * 1024 * 1024

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".csv"):
            raise forms.ValidationError("Upload a .csv file.")
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 200 MB; split it by day.")
        return upload


class LiftCeaseForm(forms.Form):
    policy = forms.ChoiceField(choices=BackBillPolicy.CHOICES, widget=forms.RadioSelect)
    from_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    reason = forms.CharField(max_length=500)


class PaymentForm(forms.Form):
    method = forms.ChoiceField(choices=Payment.Method.choices)
    amount = forms.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2, min_value=Decimal("0.01"))
    received_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    reference = forms.CharField(max_length=60, required=False, help_text="Bank or card reference.")


class RefundForm(forms.Form):
    amount = forms.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2, min_value=Decimal("0.01"))
    reason = forms.CharField(max_length=500)


class WriteOffForm(forms.Form):
    amount = forms.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2, min_value=Decimal("0.01"))
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class WriteOffDecisionForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, help_text="Required to reject.")


class AgedDebtForm(forms.Form):
    as_of = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.none(), required=False, empty_label="All partners"
    )

    def __init__(self, *args: Any, partners: QuerySet[Partner], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        partner_field = self.fields["partner"]
        assert isinstance(partner_field, forms.ModelChoiceField)
        partner_field.queryset = partners


class _InvoiceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.number} ({obj.issue_date:%d %b %Y})"


class ReallocateForm(forms.Form):
    """Move money of one payment between the customer's issued invoices (or to and from its credit)."""

    from_invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(), required=False, empty_label="Unallocated credit"
    )
    to_invoice = forms.ModelChoiceField(
        queryset=Invoice.objects.none(), required=False, empty_label="Unallocated credit"
    )
    amount = forms.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2, min_value=Decimal("0.01"))
    reason = forms.CharField(max_length=500)

    def __init__(self, *args: Any, invoices: QuerySet[Invoice], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("from_invoice", "to_invoice"):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = invoices


class DunningStepForm(forms.Form):
    days_overdue = forms.IntegerField(
        min_value=1, max_value=365, help_text="Days after the due date of the oldest unpaid invoice."
    )
    kind = forms.ChoiceField(label="Action", choices=DunningStepKind.choices)
    effective_from = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Taken only for debts that reach this step on or after this date.",
    )
    active = forms.BooleanField(required=False, initial=True)


class BacsReportForm(forms.Form):
    file = forms.FileField(help_text="An ARUDD or ADDACS report, as the XML Bacs publishes.")

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".xml"):
            raise forms.ValidationError("Upload the report's .xml file.")
        if upload.size > MAX_REPORT_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MB.")
        return upload


class LineAddForm(forms.Form):
    cli = forms.CharField(max_length=40, label="Number")
    line_type = forms.ChoiceField(choices=Line.LineType.choices, label="Type")
    product = forms.ModelChoiceField(queryset=Product.objects.none(), label="Rental product")
    site = SiteChoiceField(queryset=Site.objects.none(), required=False, empty_label="(no site)")
    start_date = forms.DateField(label="Start date", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = products_offered(customer.partner)  # type: ignore[attr-defined]
        # Only the customer's own sites, named so that two "Head office" sites can be told apart.
        self.fields["site"].queryset = Site.objects.filter(customer=customer).select_related("customer")  # type: ignore[attr-defined]


class ProductForm(forms.Form):
    partner = forms.ModelChoiceField(queryset=Partner.objects.order_by("name"))
    name = forms.CharField(max_length=100)
    monthly_price = forms.DecimalField(
        max_digits=MONEY_DIGITS,
        decimal_places=2,
        min_value=Decimal("0"),
        label="Monthly price (£, excl. VAT)",
    )
    valid_from = forms.DateField(label="Price valid from", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if user.partner_id is not None or not user.has_perm(VIEW_ALL_CUSTOMERS):
            # A partner's staff keep their own partner's catalogue only.
            del self.fields["partner"]
        self.fields["valid_from"].initial = timezone.localdate()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "partner" not in self.fields:
            if self.user.partner is None:
                raise forms.ValidationError(
                    "Only a partner's staff or the provider's administrators keep products."
                )
            data["partner"] = self.user.partner
        return data


class ProductPriceForm(forms.Form):
    valid_from = forms.DateField(label="Valid from", widget=forms.DateInput(attrs={"type": "date"}))
    monthly_price = forms.DecimalField(
        max_digits=MONEY_DIGITS,
        decimal_places=2,
        min_value=Decimal("0"),
        label="Monthly price (£, excl. VAT)",
    )
    reason = forms.CharField(max_length=500, required=False, help_text="Recorded in the history.")
