"""Django's Redis cache with one connection pool per process.

Django keeps a cache object per thread and request context, and each Redis cache object builds its
own connection pool. An async worker runs every request's sync steps in a fresh thread, so the stock
backend opened a new Redis connection (and sent its handshake) several times per API call. redis-py
pools are thread-safe and fork-aware, so one per process and server list is enough.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
