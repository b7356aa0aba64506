"""The refusal every billing service raises for a step that cannot be taken now."""

from django.core.exceptions import ValidationError


class BillingError(ValidationError):
    """A billing step that cannot be taken now; the message says why."""
