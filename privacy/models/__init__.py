"""Models of the privacy app, one module per concern; each is imported here by name."""

from privacy.models.requests import (
    OPEN_STATES,
    TRANSITIONS,
    IdentityCode,
    PrivacyPermission,
    PrivacyRequest,
    PrivacyRequestEvent,
    ReminderRun,
    State,
    SuppressionEntry,
    Transition,
)

__all__ = [
    "OPEN_STATES",
    "TRANSITIONS",
    "IdentityCode",
    "PrivacyPermission",
    "PrivacyRequest",
    "PrivacyRequestEvent",
    "ReminderRun",
    "State",
    "SuppressionEntry",
    "Transition",
]
