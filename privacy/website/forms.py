"""Public forms (each asks for consent with an unticked box) and the staff notice form.

Error messages name the field they are about, because they are also read out of context (screen
readers, the summary at the top of a form)."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from privacy.models import CookieConsentRecord, PrivacyNotice, WebsiteSubmission
from privacy.website.uploads import MAX_CV_BYTES, check_cv

CONSENT_REQUIRED = (
    "Consent: please tick the box to agree to this use of your data, or we cannot accept the form."
)


def _email_field() -> forms.EmailField:
    return forms.EmailField(
        label="Email address",
        max_length=254,
        error_messages={
            "required": "Email address: please enter your email address.",
            "invalid": "Email address: enter a valid email address, like name@example.com.",
        },
    )


def _name_field(*, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label="Your name",
        max_length=200,
        required=required,
        error_messages={"required": "Your name: please enter your name."},
    )


def _consent_field(label: str) -> forms.BooleanField:
    # Unticked by default, and required: consent is an act, never a default.
    return forms.BooleanField(
        label=label, required=True, initial=False, error_messages={"required": CONSENT_REQUIRED}
    )


class ContactForm(forms.Form):
    name = _name_field()
    email = _email_field()
    message = forms.CharField(
        label="Your message",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        error_messages={"required": "Your message: please tell us what your enquiry is about."},
    )
    consent = _consent_field(
        "I agree that Fusion may use these details to answer my enquiry, as described above."
    )


class MailingListForm(forms.Form):
    name = _name_field(required=False)
    email = _email_field()
    consent = _consent_field("I agree to receive Fusion's news by email. I can unsubscribe at any time.")


class JobApplicationForm(forms.Form):
    name = _name_field()
    email = _email_field()
    position = forms.CharField(
        label="Position applied for",
        max_length=200,
        error_messages={"required": "Position applied for: please say which job you are applying for."},
    )
    cover_note = forms.CharField(
        label="Covering note", max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    cv = forms.FileField(
        label=f"CV (PDF or Word, at most {MAX_CV_BYTES // (1024 * 1024)} MB)",
        error_messages={
            "required": "CV: please attach your CV.",
            "empty": "CV: the file is empty.",
            "invalid": "CV: no file was received; please choose it again.",
        },
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.doc,.docx"}),
    )
    consent = _consent_field(
        "I agree that Fusion may use these details and my CV to consider my application, as described above."
    )

    def clean_cv(self) -> Any:
        cv = self.cleaned_data["cv"]
        try:
            check_cv(cv)
        except ValidationError as exc:
            raise ValidationError(f"CV: {exc.messages[0]}") from exc
        return cv


class PrivacyRequestForm(forms.Form):
    email = _email_field()
    request_kind = forms.ChoiceField(
        label="What would you like us to do?",
        choices=WebsiteSubmission.RequestKind.choices,
        error_messages={
            "required": "Request: please choose what you would like us to do.",
            "invalid_choice": "Request: please choose one of the listed requests.",
        },
    )
    details = forms.CharField(
        label="Details (account reference, what data, anything that helps us find it)",
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


class CookieChoiceForm(forms.Form):
    choice = forms.ChoiceField(
        choices=CookieConsentRecord.Choice.choices,
        error_messages={
            "required": "Cookie choice: choose to accept or refuse analytics cookies.",
            "invalid_choice": "Cookie choice: choose to accept or refuse analytics cookies.",
        },
    )


class PrivacyNoticeForm(forms.ModelForm):
    class Meta:
        model = PrivacyNotice
        fields = ["title", "summary", "body"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 4}), "body": forms.Textarea(attrs={"rows": 20})}
