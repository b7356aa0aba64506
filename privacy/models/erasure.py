"""The completion record of an erasure: what was done, by whom, under which request, and how many rows
each table lost. It holds no personal data: the customer is named by id and public reference only."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class ErasureRecord(models.Model):
    # Plain columns, not a foreign key: the record must outlive anything that happens to the customer row.
    customer_pk = models.BigIntegerField(db_index=True)
    customer_reference = models.CharField(max_length=20)
    partner = models.ForeignKey("accounts.Partner", on_delete=models.PROTECT, related_name="+")
    request_reference = models.CharField(max_length=64, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    erased_at = models.DateTimeField()
    repeat = models.BooleanField(
        default=False, help_text="The customer had been erased before; this run caught up on anything left."
    )
    counts = models.JSONField(default=dict, help_text="Rows deleted or anonymised, per table.")
    kept = models.JSONField(default=dict, help_text="Rows kept, per table, and the law that keeps them.")
    files_deleted = models.PositiveIntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-erased_at", "-id"]
        permissions = [
            ("view_data_map", "Can see the data map and the Record of Processing Activities"),
            ("preview_erasure", "Can preview what erasing a customer would remove and keep"),
            ("erase_customer", "Can erase a customer (after approval)"),
        ]
        indexes = [models.Index(fields=["request_reference"], name="erasure_request_reference")]

    def __str__(self) -> str:
        return f"Erasure of {self.customer_reference} at {self.erased_at:%Y-%m-%d %H:%M}"


class ErasureEvent(models.Model):
    """A business event of erasure (performed, repeated), with the actor and reason."""

    class Action(models.TextChoices):
        ERASED = "erased", "Customer erased"
        REPEATED = "repeated", "Erasure run again"

    record = models.ForeignKey(ErasureRecord, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.at:%Y-%m-%d %H:%M}"
