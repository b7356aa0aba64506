"""Models of the billing app; its capability arrives with its own issue."""
