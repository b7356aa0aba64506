from django import forms
from django.utils import timezone

from privacy.models import DataExport, PrivacyRequest


class NewRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=PrivacyRequest.Kind.choices)
    objection_scope = forms.ChoiceField(
        choices=PrivacyRequest.ObjectionScope.choices,
        required=False,
        help_text="For an objection: what the subject objects to.",
    )
    channel = forms.ChoiceField(choices=[c for c in PrivacyRequest.Channel.choices if c[0] != "portal"])
    customer_reference = forms.CharField(
        max_length=20, required=False, help_text="The account the request is about, e.g. C-000123."
    )
    contact_id = forms.IntegerField(
        required=False, min_value=1, help_text="The contact's number, when a contact of the customer asks."
    )
    subject_email = forms.CharField(
        max_length=254, required=False, help_text="For a member of the public, or where replies should go."
    )
    received_on = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), initial=timezone.localdate
    )
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000)


class PortalRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=PrivacyRequest.Kind.choices, label="What would you like us to do?")
    objection_scope = forms.ChoiceField(
        choices=PrivacyRequest.ObjectionScope.choices,
        required=False,
        label="If you object: to what?",
    )
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000, label="Details")


class SubjectCodeForm(forms.Form):
    reference = forms.CharField(max_length=20, help_text="As in our email, e.g. DSR-000123.")
    code = forms.CharField(max_length=12, help_text="The six-digit code from the same email.")


class ExportRequestForm(forms.Form):
    request_reference = forms.CharField(
        max_length=DataExport._meta.get_field("request_reference").max_length,
        required=False,
        label="Privacy request reference",
        help_text="The request this export answers, if any.",
    )
