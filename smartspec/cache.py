"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per thread and request context, and each Redis cache object builds its
own connection pool. An async worker runs every request's sync steps in a fresh thread, so the stock
backend opened a new Redis connection (and sent its handshake) several times per API call. redis-py
pools are thread-safe and fork-aware, so one per process and server list is enough.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


class _ReusedRedisCacheClient(RedisCacheClient):
    """Django's client builds a new `redis.Redis` object for every operation (redis-py's constructor
    sets up its callbacks and event dispatcher each time): one per connection pool is enough, as a
    `redis.Redis` is thread-safe and takes a pooled connection per command."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._redis: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._redis.get(index)
        if client is None:
            pool = self._get_connection_pool(write)
            client = self._redis.setdefault(index, self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedRedisCacheClient

    def get_many_and_hashes(self, keys: list[str], hash_keys: list[str]) -> tuple[dict, dict[str, dict]]:
        """`get_many(keys)` and, in the same round trip (one pipeline), the fields of each Redis hash
        named in `hash_keys` (raw Redis names, outside the cache's key prefix; {} for a missing one)."""
        made = {self.make_and_validate_key(key): key for key in keys}
        pipe = self._cache.get_client(None).pipeline(transaction=False)
        pipe.mget(list(made))
        for name in hash_keys:
            pipe.hgetall(name)
        values, *hashes = pipe.execute()
        loads = self._cache._serializer.loads
        pairs = zip(made, values, strict=True)
        found = {made[key]: loads(value) for key, value in pairs if value is not None}
        return found, dict(zip(hash_keys, hashes, strict=True))

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
