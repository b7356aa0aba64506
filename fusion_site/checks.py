"""System checks: encrypted values under old keys, and the libraries PDF documents need.

The key check reads the census ``rotate_encryption_keys`` stores (``EncryptionKeyCensus``) rather than
counting at every start-up: a count reads every encrypted column of every table. A census taken under
another newest key is stale, and says so.
"""

from typing import Any

from django.core.checks import CheckMessage, Warning, register
from django.db import DatabaseError

from fusion_site import crypto, pdf


@register()
def old_encryption_keys_in_use(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from fusion_site.models import EncryptionKeyCensus

    try:
        census = EncryptionKeyCensus.objects.first()
        primary_id = crypto.keyring().primary_id
    except (DatabaseError, Exception):  # no table yet (before migrate) or no keys: nothing to say
        return []
    if census is None:
        return []
    if census.primary_key_id != primary_id:
        return [
            Warning(
                f"The newest encryption key is now {primary_id}; values are still under "
                f"{census.primary_key_id} or older.",
                hint="Run `manage.py rotate_encryption_keys` to re-encrypt them under the newest key.",
                id="fusion_site.W001",
            )
        ]
    old = census.values_under_old_keys
    if old:
        listed = ", ".join(f"{n} under {kid}" for kid, n in sorted(old.items()))
        return [
            Warning(
                f"Encrypted values remain under old keys ({listed}) at the last count "
                f"({census.counted_at:%Y-%m-%d %H:%M}).",
                hint="Run `manage.py rotate_encryption_keys` (resumable) before removing the old keys.",
                id="fusion_site.W001",
            )
        ]
    return []


@register()
def weasyprint_libraries(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Invoices, statements and the Art. 15 report are printed to PDF by WeasyPrint, which needs Pango."""
    problem = pdf.weasyprint_problem()
    if not problem:
        return []
    return [
        Warning(
            f"PDF documents cannot be made: {problem}",
            hint=f"On Debian: apt-get install {pdf.DEBIAN_PACKAGES}",
            id="fusion_site.W002",
        )
    ]
