"""Models of the privacy app, one module per capability; each is re-exported here for Django."""

from privacy.models.erasure import ErasureEvent, ErasureRecord

__all__ = ["ErasureEvent", "ErasureRecord"]
