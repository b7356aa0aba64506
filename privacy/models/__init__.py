"""Models of the privacy app, one module per concern; import them from here."""

from privacy.models.exports import DataExport

__all__ = ["DataExport"]
