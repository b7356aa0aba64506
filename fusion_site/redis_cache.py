"""Django's Redis cache, with one redis-py client per connection pool instead of one per call.

Django's ``RedisCacheClient.get_client`` makes a new ``redis.Redis`` for every cache call, and making one
copies redis-py's table of about two hundred response callbacks: about 50 us, more than the GET itself
(about 30 us) on this machine, and every signed-in page reads its session from this cache. A client holds
nothing of its own between calls (the pool lends a connection per command, and redis-py's pool starts
afresh in a forked process), so one is kept per pool and shared by the threads of a process.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}  # by the id of its pool (pools are kept for good in _pools)

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined] # Django's, not in its stubs
        client = self._clients.get(id(pool))
        if client is None:
            # Two threads may both make one here; either is as good, and the other is dropped.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class ReusedClientRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with ``ReusedClientRedisCacheClient``."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
