"""Writes of the privacy app, one module per area (requests today)."""
