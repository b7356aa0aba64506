"""The product catalogue: products, their price versions, and the product a line is rented as.

A price is never edited: a new price is a new version from a date. A version may not start before today,
so what earlier bills charged stays what the catalogue says (a back-dated change would silently disagree
with invoices already issued); a mistake in a version not yet in force is corrected by adding another
version on the same date, which replaces it."""

import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Line, Partner, User
from billing.models import LineProduct, Product, ProductPrice
from fusion_site.models import UNCHANGED, Unchanged, given, save_with_actor, update_with_actor


@transaction.atomic
def product_create(
    *,
    partner: Partner,
    name: str,
    monthly_price: Decimal,
    valid_from: datetime.date,
    actor: User | None,
) -> Product:
    """A new product with its first price version (which may start on any date: nothing was billed at it)."""
    if Product.objects.filter(partner=partner, name=name.strip()).exists():
        raise ValidationError({"name": "The partner has a product of this name already."})
    product = save_with_actor(Product(partner=partner, name=name.strip()), actor=actor)
    save_with_actor(
        ProductPrice(product=product, valid_from=valid_from, monthly_price=monthly_price), actor=actor
    )
    audit_record(
        actor=actor,
        action="product.created",
        target=product,
        detail={"partner": partner.pk, "valid_from": valid_from, "monthly_price": monthly_price},
    )
    return product


PRODUCT_EDITABLE_FIELDS = ("name", "active")


@transaction.atomic
def product_update(
    *,
    product: Product,
    actor: User,
    reason: str = "",
    name: str | Unchanged = UNCHANGED,
    active: bool | Unchanged = UNCHANGED,
) -> Product:
    """Rename a product or stop offering it for new lines (its lines keep it)."""
    changes = given({"name": name, "active": active})
    return update_with_actor(
        product, actor=actor, changes=changes, allowed=PRODUCT_EDITABLE_FIELDS, reason=reason
    )


@transaction.atomic
def product_price_add(
    *, product: Product, valid_from: datetime.date, monthly_price: Decimal, actor: User, reason: str = ""
) -> ProductPrice:
    """A new price version from ``valid_from`` (today or later). A version already starting that day is
    replaced, keeping its history."""
    if valid_from < timezone.localdate():
        raise ValidationError(
            {"valid_from": "A new price starts today or later: bills already issued charged the old one."}
        )
    Product.objects.select_for_update().filter(pk=product.pk).first()
    version = ProductPrice.objects.filter(product=product, valid_from=valid_from).first() or ProductPrice(
        product=product, valid_from=valid_from
    )
    previous = version.monthly_price if version.pk else None
    version.monthly_price = monthly_price
    save_with_actor(version, actor=actor, reason=reason or "New price")
    audit_record(
        actor=actor,
        action="product.price_added",
        target=product,
        detail={"valid_from": valid_from, "monthly_price": monthly_price, "replaced": previous},
    )
    return version


@transaction.atomic
def line_set_product(*, line: Line, product: Product, actor: User | None) -> LineProduct:
    """Rent the line as ``product`` (one of its customer's partner's products)."""
    if product.partner_id != line.customer.partner_id:
        raise ValidationError({"product": "The product is another partner's."})
    rental = LineProduct.objects.filter(line=line).first() or LineProduct(line=line)
    rental.product = product
    return save_with_actor(rental, actor=actor)
