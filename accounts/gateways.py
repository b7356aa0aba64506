"""Adapters to the line provisioning gateway (settings.PROVISIONING_GATEWAY)."""

import secrets
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from accounts.models import ProvisioningOrder


class GatewayUnavailableError(Exception):
    """The gateway could not be reached; the order is retried later."""


class GatewayRejectedError(Exception):
    """The gateway refused the order; it is marked failed with this reason."""


class ProvisioningGateway(Protocol):
    def submit(self, order: ProvisioningOrder) -> str:
        """Send the order; return the gateway's reference for it."""
        ...


class SimulatedWlrGateway:
    """A local stand-in for the wholesale line rental gateway: accepts every well-formed order."""

    def submit(self, order: ProvisioningOrder) -> str:
        if order.kind != ProvisioningOrder.Kind.PROVIDE and order.line_id is None:
            raise GatewayRejectedError("A cease or modify order needs an existing line.")
        return f"WLR-{secrets.token_hex(5).upper()}"


def provisioning_gateway() -> ProvisioningGateway:
    gateway: ProvisioningGateway = import_string(settings.PROVISIONING_GATEWAY)()
    return gateway
