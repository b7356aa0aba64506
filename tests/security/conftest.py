import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Alerts are sent once per subject and window (a cache key); ids repeat between tests."""
    cache.clear()
    yield
    cache.clear()
