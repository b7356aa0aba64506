"""Models of the privacy app, one module per capability, imported here by name."""

from privacy.models.website import CookieConsentRecord, PrivacyNotice, WebsiteSubmission

__all__ = ["CookieConsentRecord", "PrivacyNotice", "WebsiteSubmission"]
