from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm

from accounts.models import Contact, ProvisioningOrder, User


class RevealForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"size": 50}), help_text="Recorded in the access log."
    )
    include_payment = forms.BooleanField(required=False, label="Include payment details")


class ContactForm(forms.Form):
    name = forms.CharField(max_length=200)
    email = forms.CharField(max_length=254, label="Email")
    phone = forms.CharField(max_length=40)
    role = forms.ChoiceField(choices=Contact.ContactRole.choices)
    reason = forms.CharField(max_length=500, required=False, help_text="Why this is being corrected.")


class SiteForm(forms.Form):
    label = forms.CharField(max_length=100)
    address_line1 = forms.CharField(max_length=200, label="Address line 1")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address line 2")
    town = forms.CharField(max_length=100)
    postcode = forms.CharField(max_length=10)
    reason = forms.CharField(max_length=500, required=False, help_text="Why this is being corrected.")


class ProvisioningOrderForm(forms.Form):
    kind = forms.ChoiceField(choices=ProvisioningOrder.Kind.choices)
    line = forms.IntegerField(required=False)
    notes = forms.CharField(max_length=1000, required=False)


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "partner")


class UserChangeForm(BaseUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class OneTimeCodeForm(forms.Form):
    token = forms.CharField(
        label="Code",
        max_length=16,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text"}),
    )
