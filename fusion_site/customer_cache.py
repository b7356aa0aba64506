"""Caching values about one customer so that they can all be forgotten at once.

Anything cached that is about a customer goes through ``customer_cache_set``, which also notes the key
in the customer's key list; ``customer_cache_forget`` deletes every noted key and the list (erasure calls
it). Flushing the whole cache instead would also flush whatever shares the Redis database (Celery's
queue, by default), and leaving keys to expire would keep personal data for their lifetime.
"""

from collections.abc import Iterable
from typing import Any

from django.core.cache import cache

_KEYS = "customer:{pk}:keys"
# Longer than any value's lifetime, so the list outlives the keys it names.
KEY_LIST_TIMEOUT = 60 * 60 * 24 * 30


def customer_cache_key(customer_pk: int, name: str) -> str:
    return f"customer:{customer_pk}:{name}"


def customer_cache_set(customer_pk: int, name: str, value: Any, timeout: int | None = 300) -> str:
    key = customer_cache_key(customer_pk, name)
    cache.set(key, value, timeout)
    keys_key = _KEYS.format(pk=customer_pk)
    # Not atomic with a concurrent set of another key: the worst case is one key missing from the list,
    # which then lives only until its own (short) timeout.
    known: list[str] = cache.get(keys_key, [])
    if key not in known:
        cache.set(keys_key, [*known, key], KEY_LIST_TIMEOUT)
    return key


def customer_cache_get(customer_pk: int, name: str, default: Any = None) -> Any:
    return cache.get(customer_cache_key(customer_pk, name), default)


def customer_cache_forget(customer_pk: int) -> int:
    """Delete every cached value noted for the customer; returns how many keys were noted."""
    return customer_cache_forget_many([customer_pk])


def customer_cache_forget_many(customer_pks: Iterable[int]) -> int:
    """The same for several customers, in two round trips to the cache whatever their number."""
    keys_keys = [_KEYS.format(pk=pk) for pk in customer_pks]
    if not keys_keys:
        return 0
    known: list[str] = [key for keys in cache.get_many(keys_keys).values() for key in keys]
    cache.delete_many([*known, *keys_keys])
    return len(known)
