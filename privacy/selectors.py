"""Reads of the privacy app, scoped to what the user may see (through accounts' customer scoping)."""

import uuid

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Customer, User
from accounts.selectors import customer_ids_visible_to
from privacy.models import DataExport

VIEW_DATA_EXPORT = "privacy.view_dataexport"
ADD_DATA_EXPORT = "privacy.add_dataexport"
EXPORTS_LISTED = 50


def exports_of_customer(customer: Customer) -> QuerySet[DataExport]:
    """The customer's exports, newest first, for a customer the caller has already been allowed to see."""
    return (
        DataExport.objects.filter(customer=customer)
        .select_related("requested_by")
        .order_by("-created_at", "-id")
    )


def data_exports_visible_to(user: User | AnonymousUser) -> QuerySet[DataExport]:
    if not isinstance(user, User) or not user.is_active or not user.has_perm(VIEW_DATA_EXPORT):
        return DataExport.objects.none()
    return DataExport.objects.filter(customer__in=customer_ids_visible_to(user))


def access_data_export(user: User | AnonymousUser, public_id: uuid.UUID) -> DataExport:
    """The export, if the user may see its customer and exports; otherwise 404 (never 403, which would
    confirm the export exists)."""
    export = data_exports_visible_to(user).select_related("customer").filter(public_id=public_id).first()
    if export is None:
        raise Http404("No such export.")
    return export
