"""Login throttling by account and by client address, in Django's cache (Redis when configured, so
every worker counts together).

`LOGIN_FAILURES_PER_ACCOUNT` failed sign-ins for one username, or `LOGIN_FAILURES_PER_IP` from one
address, within `LOGIN_LOCKOUT_SECONDS` lock that account (or address) out for the rest of the
window: while locked, no password is checked at all, so the right one guessed on try 101 does not
get in. A successful sign-in clears its account's count. The address is `REMOTE_ADDR`: behind a
reverse proxy, have the proxy set it (uvicorn `--proxy-headers --forwarded-allow-ips`).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(*, username: str, address: str) -> dict[str, str]:
    def digest(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    prefix = settings.LOGIN_THROTTLE_KEY_PREFIX
    return {
        "account": f"{prefix}:account:{digest(username.strip().lower())}",
        "address": f"{prefix}:ip:{digest(address)}",
    }


def _limits() -> dict[str, int]:
    return {"account": settings.LOGIN_FAILURES_PER_ACCOUNT, "address": settings.LOGIN_FAILURES_PER_IP}


def login_locked(*, username: str, address: str) -> bool:
    """True while the account or the address has used up its failed attempts."""
    keys = _keys(username=username, address=address)
    counts = cache.get_many(list(keys.values()))
    limits = _limits()
    return any((counts.get(key) or 0) >= limits[kind] for kind, key in keys.items())


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed sign-in against the account and the address (the window starts at the first)."""
    for key in _keys(username=username, address=address).values():
        if not cache.add(key, 1, settings.LOGIN_LOCKOUT_SECONDS):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, settings.LOGIN_LOCKOUT_SECONDS)


def login_success_record(*, username: str, address: str) -> None:
    cache.delete(_keys(username=username, address=address)["account"])
