from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm

from accounts import pii
from accounts.models import Contact, ProvisioningOrder, Site, User


def site_choice_label(site: Site) -> str:
    """How a site is named where one is chosen: many customers have a "Head office", so the customer's
    reference, the site's name, the postcode's outward code (masked like everywhere else) and the site's
    id. Needs the site's customer loaded with it (``select_related``)."""
    return f"{site.customer.reference} {site.label}, {pii.mask_postcode(site.postcode)} (site {site.pk})"


class SiteChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Site) -> str:
        return site_choice_label(obj)


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


class ContactAddForm(forms.Form):
    name = forms.CharField(max_length=200)
    email = forms.CharField(max_length=254, label="Email")
    phone = forms.CharField(max_length=40)
    role = forms.ChoiceField(choices=Contact.ContactRole.choices)


class SiteAddForm(forms.Form):
    label = forms.CharField(max_length=100, label="Site name")
    address_line1 = forms.CharField(max_length=200, label="Address line 1")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address line 2")
    town = forms.CharField(max_length=100)
    postcode = forms.CharField(max_length=10)


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
