"""The product catalogue: line rental products of a partner, each priced by effective-dated versions, and
the product each line is rented as (imported by ``billing.models``).

A product's price on a day is the version with the latest ``valid_from`` on or before that day
(``billing.catalogue.price_on``); a new price is a new version, never an edit of an old one, so a bill for
any period can be worked out again and says what was charged then. The bill run reads the versions for the
days it bills (``billing.calculation``), so a price change takes effect on its date, mid-month included.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Line, Partner
from fusion_site.models import TimeStampedModel
from fusion_site.money import MONEY_DIGITS


class Product(TimeStampedModel):
    """A line rental product a partner sells (an analogue line, a SIP channel), with a monthly price."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True, help_text="Offered for new lines.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["partner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="product_unique_name_per_partner"),
        ]

    def __str__(self) -> str:
        return self.name


class ProductPrice(TimeStampedModel):
    """One version of a product's monthly price, in force from ``valid_from`` until the next version."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    valid_from = models.DateField()
    monthly_price = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2)

    history = HistoricalRecords()

    class Meta:
        ordering = ["product", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["product", "valid_from"], name="productprice_one_per_day"),
            models.CheckConstraint(name="productprice_not_negative", condition=Q(monthly_price__gte=0)),
        ]

    def __str__(self) -> str:
        return f"{self.product} from {self.valid_from:%Y-%m-%d}"


class LineProduct(TimeStampedModel):
    """The product a line is rented as: the bill run charges the line's days at the product's prices."""

    line = models.OneToOneField(Line, on_delete=models.CASCADE, related_name="rental_product")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="line_rentals")

    history = HistoricalRecords()

    class Meta:
        verbose_name = "line rental product"

    def __str__(self) -> str:
        return f"Line {self.line_id} rented as {self.product}"

    def clean(self) -> None:
        if self.line_id is None or self.product_id is None:
            return
        if self.product.partner_id != self.line.customer.partner_id:
            raise ValidationError({"product": "The product is another partner's."})
