"""Billing fixtures (agent, finance, dpo, profile) live in tests/conftest.py, shared with privacy."""
