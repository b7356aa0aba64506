"""Every write of the privacy request workflow, one module per stage: receiving, identity, workflow (the
steps of ``privacy.models.TRANSITIONS``), carrying out, reminders."""
