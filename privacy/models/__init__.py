"""Models of the privacy app, one module per concern; each is imported here by name for Django."""

from privacy.models.breaches import BreachIncident, BreachReminder
from privacy.models.erasure import ErasureEvent, ErasureRecord
from privacy.models.exports import DataExport
from privacy.models.governance import AssessmentReminder, AssessmentRisk, ImpactAssessment, Processor
from privacy.models.requests import (
    OPEN_STATES,
    TRANSITIONS,
    IdentityCode,
    PrivacyRequest,
    PrivacyRequestEvent,
    ReminderRun,
    State,
    SuppressionEntry,
    Transition,
)
from privacy.models.retention import LegalHold, RetentionLock, RetentionPolicy, RetentionRun
from privacy.models.website import CookieConsentRecord, PrivacyNotice, WebsiteSubmission
from privacy.permissions import PrivacyPermission

__all__ = [
    "OPEN_STATES",
    "TRANSITIONS",
    "AssessmentReminder",
    "AssessmentRisk",
    "BreachIncident",
    "BreachReminder",
    "CookieConsentRecord",
    "DataExport",
    "ErasureEvent",
    "ErasureRecord",
    "IdentityCode",
    "ImpactAssessment",
    "LegalHold",
    "PrivacyNotice",
    "PrivacyPermission",
    "PrivacyRequest",
    "PrivacyRequestEvent",
    "Processor",
    "ReminderRun",
    "RetentionLock",
    "RetentionPolicy",
    "RetentionRun",
    "State",
    "SuppressionEntry",
    "Transition",
    "WebsiteSubmission",
]
