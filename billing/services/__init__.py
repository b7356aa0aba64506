"""Every write of the billing app, one module per concern. Keyword-only, transactional, taking the
acting user."""
