"""API keys: `sk-ss-` + 32 random base62 characters + a 6-character checksum.

The checksum rejects mistyped or made-up keys without touching the database;
only an HMAC-SHA256 of the key (under `API_KEY_SECRET`) is stored.

Authentication is on every call's path, so a found key (with its user) is kept in the shared cache
under its hash for `API_KEY_CACHE_SECONDS`. Revoking writes a tombstone there first; a lookup
that raced it can only `add`, never overwrite the tombstone, so a revoked key stops working at once
on every worker (a revocation that then rolls back leaves the key refused until the tombstone
ends). The TTL is the backstop for changes made elsewhere (a user deactivated in admin).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from smartspec.errors import NotFound

from .limits import key_limit_defaults
from .models import ApiKey

KEY_PREFIX = "sk-ss-"
_ALPHABET = string.digits + string.ascii_letters
_RANDOM_LEN = 32
_CHECKSUM_LEN = 6
VISIBLE_PREFIX_LEN = len(KEY_PREFIX) + 8
KEY_LEN = len(KEY_PREFIX) + _RANDOM_LEN + _CHECKSUM_LEN
# last_used_at is a hint for people, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_REVOKED = "revoked"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LEN)


def key_generate() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LEN))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def key_is_well_formed(raw: str) -> bool:
    if len(raw) != KEY_LEN or not raw.startswith(KEY_PREFIX):
        return False
    body, check = raw[len(KEY_PREFIX) : -_CHECKSUM_LEN], raw[-_CHECKSUM_LEN:]
    if any(c not in _ALPHABET for c in body):
        return False
    return hmac.compare_digest(check, _checksum(body))


def key_hash(raw: str) -> str:
    return hmac.new(settings.API_KEY_SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()


def api_key_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and never stored."""
    raw = key_generate()
    api_key = ApiKey.objects.create(
        user=user,
        name=name[:100],
        prefix=raw[:VISIBLE_PREFIX_LEN],
        key_hash=key_hash(raw),
        **key_limit_defaults(),
    )
    return api_key, raw


def _cache_key(hashed: str) -> str:
    return f"apikey:{hashed}"


def api_keys_uncache(*, key_hashes: list[str]) -> None:
    """Stop serving these keys from the cache on every worker: a tombstone that a racing lookup
    cannot overwrite (it only `add`s). Written before the revocation commits, so no window is left."""
    if key_hashes:
        cache.set_many({_cache_key(h): _REVOKED for h in key_hashes}, settings.API_KEY_CACHE_SECONDS)


def api_keys_user_status_changed(*, user: AbstractBaseUser) -> None:
    """A user was saved: if inactive, none of their keys is served from the cache any more, on any
    worker, from now on (a tombstone, as for a revocation); if active, cached copies and tombstones
    are dropped so the keys are read afresh (a reactivated user's keys work again at once)."""
    hashes = list(
        ApiKey.objects.filter(user=user, revoked_at__isnull=True).values_list("key_hash", flat=True)
    )
    if not user.is_active:
        api_keys_uncache(key_hashes=hashes)
    elif hashes:
        cache.delete_many([_cache_key(h) for h in hashes])


def api_key_cache_drop(*, api_key: ApiKey) -> None:
    """Forget the cached copy after an edit (limits, name), so every worker reads the new row."""
    cache.delete(_cache_key(api_key.key_hash))


def api_keys_revoke(*, keys) -> int:
    """Revoke every active key of a queryset (staff); returns how many were revoked."""
    with transaction.atomic():
        hashes = list(
            keys.filter(revoked_at__isnull=True).select_for_update().values_list("key_hash", flat=True)
        )
        api_keys_uncache(key_hashes=hashes)
        return ApiKey.objects.filter(key_hash__in=hashes).update(revoked_at=timezone.now())


def api_key_get(*, user: AbstractBaseUser, key_id: int) -> ApiKey:
    """One of the user's own keys (another user's key is simply not found)."""
    api_key = ApiKey.objects.filter(user=user, pk=key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    return api_key


def api_key_revoke(*, user: AbstractBaseUser, key_id: int) -> ApiKey:
    """Revoke one of the user's own keys (another user's key is simply not found)."""
    api_key = api_key_get(user=user, key_id=key_id)
    # Also when it was revoked already: a tombstone costs nothing and closes any race.
    api_keys_uncache(key_hashes=[api_key.key_hash])
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def _key_load(hashed: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hashed, revoked_at__isnull=True, user__is_active=True)
        .first()
    )


_UNREAD = object()


def api_key_authenticate(raw: str, *, cached: object = _UNREAD) -> ApiKey | None:
    """The active key for a raw key, with its user loaded; None when unknown or revoked. `cached` is
    the key's cache entry when the caller has read it already (`api_key_authenticate_prefetching`)."""
    if not key_is_well_formed(raw):
        return None
    hashed = key_hash(raw)
    if cached is _UNREAD:
        cached = cache.get(_cache_key(hashed))
    if cached == _REVOKED:
        return None
    if isinstance(cached, ApiKey):
        return cached
    api_key = _key_load(hashed)
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    # `add`, not `set`: a revocation's tombstone written meanwhile must win.
    cache.add(_cache_key(hashed), api_key, settings.API_KEY_CACHE_SECONDS)
    return api_key


def api_key_authenticate_prefetching(
    raw: str, *, cache_keys: list[str], hash_keys: list[str] = ()
) -> tuple[ApiKey | None, dict]:
    """`api_key_authenticate`, reading `cache_keys` in the same cache round trip: the key and what the
    call will need next. Returns the key and the entries found among `cache_keys`; with `hash_keys`
    (Redis hashes beside the cache, e.g. provider states) and a Redis cache, their fields too, under
    their names, read in the same round trip (absent when the cache cannot)."""
    if not key_is_well_formed(raw):
        return None, {}
    own = _cache_key(key_hash(raw))
    read_both = getattr(cache, "get_many_and_hashes", None) if hash_keys else None
    if read_both is None:
        found = cache.get_many([own, *cache_keys])
    else:
        found, hashes = read_both([own, *cache_keys], list(hash_keys))
        found.update(hashes)
    api_key = api_key_authenticate(raw, cached=found.pop(own, None))
    return api_key, found
