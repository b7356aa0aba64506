"""The forms of the onboarding page: one section per thing a new customer starts with. Each section is
checked by the rules of the row it becomes (the model's own ``full_clean``: normalisers, the modulus check
of the bank details, a number already in use), so the page names a bad field before anything is saved,
and the services check the same rules again when it is."""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model

from accounts.models import Contact, Customer, Line, Partner, PaymentDetails, Site
from billing import selectors
from billing.models import Product, Tariff
from billing.services.onboarding import NewBankDetails, NewContact, NewLine, NewSite

MAX_LINES = 10
DateInput = forms.DateInput(attrs={"type": "date"})


def model_errors_onto(form: forms.Form, instance: Model, checked: Iterable[str]) -> None:
    """Run the model's own validation of ``instance`` over the ``checked`` fields and put each error on
    the form field of the same name (or above the form)."""
    checked = set(checked)
    exclude = [field.name for field in instance._meta.fields if field.name not in checked]
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for name, errors in exc.error_dict.items():
            if name in form.fields and name not in form.errors:
                form.add_error(name, errors)
            elif name not in form.fields:
                form.add_error(None, errors)


class CustomerSection(forms.Form):
    name = forms.CharField(max_length=200, label="Trading name")
    contract_start = forms.DateField(label="Contract start", widget=DateInput)
    tariff = forms.ModelChoiceField(queryset=Tariff.objects.none(), label="Call tariff", empty_label=None)

    def __init__(self, *args: Any, partner: Partner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partner = partner
        field = self.fields["tariff"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = selectors.tariffs_usable_by(partner)
        profile = getattr(partner, "billing_profile", None)
        if profile is not None and profile.default_tariff_id:
            field.initial = profile.default_tariff_id

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "name" in data and "contract_start" in data:
            model_errors_onto(
                self,
                Customer(partner=self.partner, name=data["name"], contract_start=data["contract_start"]),
                ["name", "contract_start"],
            )
        return data


class SiteSection(forms.Form):
    label = forms.CharField(max_length=100, initial="Head office", label="Site name")
    address_line1 = forms.CharField(max_length=200, label="Address line 1")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address line 2")
    town = forms.CharField(max_length=100)
    postcode = forms.CharField(max_length=10)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model_errors_onto(self, Site(**{name: data.get(name, "") for name in self.fields}), self.fields)
        return data

    def new_site(self) -> NewSite:
        return NewSite(**self.cleaned_data)


class ContactSection(forms.Form):
    name = forms.CharField(max_length=200, label="Contact name")
    email = forms.CharField(max_length=254, label="Email")
    phone = forms.CharField(max_length=40, label="Phone")
    role = forms.ChoiceField(choices=Contact.ContactRole.choices, initial=Contact.ContactRole.PRIMARY)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model_errors_onto(self, Contact(**{name: data.get(name, "") for name in self.fields}), self.fields)
        return data

    def new_contact(self) -> NewContact:
        return NewContact(**self.cleaned_data)


class LineSection(forms.Form):
    cli = forms.CharField(max_length=40, label="Number")
    # An initial value, so that an unused row (its select showing the first type) counts as unchanged.
    line_type = forms.ChoiceField(
        choices=Line.LineType.choices, label="Type", initial=Line.LineType.WLR_ANALOGUE
    )
    product = forms.ModelChoiceField(queryset=Product.objects.none(), label="Rental product")

    def __init__(self, *args: Any, partner: Partner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["product"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = selectors.products_offered(partner)

    def check_line(self, start_date: Any) -> None:
        """The number's own rules, and no other line holding it from ``start_date``."""
        if "cli" in self.cleaned_data:
            line = Line(cli=self.cleaned_data["cli"], line_type=self.cleaned_data.get("line_type", ""))
            line.start_date = start_date
            model_errors_onto(self, line, ["cli", "start_date"])
            if "cli" not in self.errors:
                self.cleaned_data["cli"] = line.cli


class BaseLineFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen: dict[str, int] = {}
        for number, form in enumerate(self.forms, start=1):
            cli = form.cleaned_data.get("cli") if form.has_changed() else None
            if cli and cli in seen:
                form.add_error("cli", f"Line {seen[cli]} has this number already.")
            elif cli:
                seen[cli] = number


LineFormSet = forms.formset_factory(
    LineSection,
    formset=BaseLineFormSet,
    extra=3,
    min_num=1,
    validate_min=True,
    max_num=MAX_LINES,
    validate_max=True,
)


class BankSection(forms.Form):
    account_holder = forms.CharField(max_length=18, required=False, label="Account holder")
    sort_code = forms.CharField(max_length=8, required=False, label="Sort code")
    account_number = forms.CharField(max_length=10, required=False, label="Account number")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = {name: data.get(name, "").strip() for name in self.fields}
        if not any(given.values()):
            return data  # no Direct Debit: the customer pays another way
        for name, value in given.items():
            if not value:
                self.add_error(name, "Give every Direct Debit detail, or none.")
        if not self.errors:
            details = PaymentDetails(**given)
            model_errors_onto(self, details, self.fields)
            if not self.errors:
                data.update(sort_code=details.sort_code, account_number=details.account_number)
        return data

    def new_bank_details(self) -> NewBankDetails | None:
        data = self.cleaned_data
        if not data.get("sort_code"):
            return None
        return NewBankDetails(data["account_holder"], data["sort_code"], data["account_number"])


SECTION_TITLES = {
    "customer": "Customer",
    "site": "First site",
    "contact": "Contact",
    "lines": "Line",
    "bank": "Direct Debit",
}


class OnboardingForms:
    """The page's sections, bound together and checked together (a line's number is checked from the
    contract start)."""

    def __init__(self, partner: Partner, data: Any = None) -> None:
        self.partner = partner
        self.customer = CustomerSection(data, prefix="customer", partner=partner)
        self.site = SiteSection(data, prefix="site")
        self.contact = ContactSection(data, prefix="contact")
        self.lines = LineFormSet(data, prefix="lines", form_kwargs={"partner": partner})
        self.bank = BankSection(data, prefix="bank")

    def is_valid(self) -> bool:
        valid = all(
            [self.customer.is_valid(), self.site.is_valid(), self.contact.is_valid(), self.bank.is_valid()]
        )
        lines_valid = self.lines.is_valid()
        start = self.customer.cleaned_data.get("contract_start")
        if lines_valid and start is not None:
            for form in self.lines.forms:
                if form.has_changed():
                    form.check_line(start)
            lines_valid = not any(form.errors for form in self.lines.forms)
        return valid and lines_valid

    def new_lines(self) -> list[NewLine]:
        return [
            NewLine(
                cli=form.cleaned_data["cli"],
                line_type=form.cleaned_data["line_type"],
                product=form.cleaned_data["product"],
            )
            for form in self.lines.forms
            if form.has_changed() and form.cleaned_data
        ]

    def errors_named(self) -> list[str]:
        """Every error as "<section> <field>: <message>", for the list above the form."""
        named: list[str] = []

        def add(title: str, form: forms.Form) -> None:
            for name, errors in form.errors.items():
                label = (
                    form.fields[name].label or name.replace("_", " ").capitalize()
                    if name in form.fields
                    else ""
                )
                where = f"{title} {str(label).lower()}" if label else title
                named.extend(f"{where}: {message}" for message in errors)

        add(SECTION_TITLES["customer"], self.customer)
        add(SECTION_TITLES["site"], self.site)
        add(SECTION_TITLES["contact"], self.contact)
        for number, form in enumerate(self.lines.forms, start=1):
            add(f"{SECTION_TITLES['lines']} {number}", form)
        named += [f"Lines: {message}" for message in self.lines.non_form_errors()]
        add(SECTION_TITLES["bank"], self.bank)
        return named

    def add_service_errors(self, exc: ValidationError) -> None:
        """A refusal at saving (``customer_onboard`` names ``<section>.<field>``), put on its field."""
        sections = {
            "customer": self.customer,
            "site": self.site,
            "contact": self.contact,
            "bank": self.bank,
            "tariff": self.customer,
        }
        for key, errors in (exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}).items():
            parts = (key or "").split(".")
            if parts[0] == "lines" and len(parts) == 3 and parts[1].isdigit():
                form = self.lines.forms[int(parts[1]) - 1]
                form.add_error(parts[2] if parts[2] in form.fields else None, errors)
                continue
            form = sections.get(parts[0], self.customer)
            field = parts[-1] if len(parts) > 1 and parts[-1] in form.fields else None
            form.add_error(field, errors)
