from django import forms

from privacy.models import DataExport


class ExportRequestForm(forms.Form):
    request_reference = forms.CharField(
        max_length=DataExport._meta.get_field("request_reference").max_length,
        required=False,
        label="Privacy request reference",
        help_text="The request this export answers, if any.",
    )
