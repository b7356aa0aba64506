"""Who keeps the product catalogue and rents lines as its products. Billing agents keep their partner's
products (add them, rename or withdraw them, add a price version) and onboard customers with them; the
administrator keeps every partner's. Price versions are never changed or deleted: a new price is a new
version. Frozen here; changes are new migrations."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ROLE_PERMISSIONS = {
    "administrator": [
        "billing.view_product",
        "billing.add_product",
        "billing.change_product",
        "billing.view_productprice",
        "billing.add_productprice",
        "billing.view_lineproduct",
        "billing.add_lineproduct",
        "billing.change_lineproduct",
    ],
    "billing agent": [
        "billing.view_product",
        "billing.add_product",
        "billing.change_product",
        "billing.view_productprice",
        "billing.add_productprice",
        "billing.view_lineproduct",
        "billing.add_lineproduct",
        "billing.change_lineproduct",
    ],
    "finance manager": ["billing.view_product", "billing.view_productprice", "billing.view_lineproduct"],
}


class Migration(migrations.Migration):
    dependencies = [("billing", "0021_product_catalogue")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
