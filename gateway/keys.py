"""API keys: `sk-ss-` + 32 random base62 characters + a 6-character checksum.

The checksum rejects mistyped or made-up keys without touching the database;
only an HMAC-SHA256 of the key (under `API_KEY_SECRET`) is stored.
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


def api_key_get(*, user: AbstractBaseUser, key_id: int) -> ApiKey:
    """One of the user's own keys (another user's key is simply not found)."""
    api_key = ApiKey.objects.filter(user=user, pk=key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    return api_key


def api_key_revoke(*, user: AbstractBaseUser, key_id: int) -> ApiKey:
    """Revoke one of the user's own keys (another user's key is simply not found)."""
    api_key = api_key_get(user=user, key_id=key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key for a raw key, with its user loaded; None when unknown or revoked."""
    if not key_is_well_formed(raw):
        return None
    api_key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=key_hash(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
