"""Models of the privacy app; its capability arrives with its own issue."""
