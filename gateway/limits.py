"""Per-key limits: requests and tokens per minute, credits per UTC day and month.

    limits = KeyLimits.from_api_key(api_key)          # None when the key has no limit at all
    reservation = limits_admit(limits=limits, tokens=worst_tokens, credits=hold_amount)
    ...                                                # the call
    limits_settle(reservation=reservation, tokens=used_tokens, credits=charged)

Counters live in the cache: Redis when `REDIS_URL` is set, so every worker and host shares
them, the local-memory cache otherwise. A call is admitted by reserving its worst case on each
counter (one request; its prompt bound + max_tokens; its credit hold), atomically with `incr`,
and given back at once if any limit would be passed. When the call ends the reservation shrinks
to what was really used. The per-minute windows are fixed (the current UTC minute); the spend
counters are seeded from the usage records on first use in a period, so a cache restart does
not reset a cap.

Outcomes: past a rate limit or a spend cap -> 429 `RateLimited` with `Retry-After` (the seconds
until the window or period rolls over; waiting is the cure, not topping up, hence not 402); a
single call whose worst case alone exceeds a limit -> 400 (waiting would never help). With the
cache unreachable a limited key gets 503: limits fail closed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from billing.credits import MICRO_PER_CREDIT, format_credits
from smartspec.errors import InvalidRequest, RateLimited, ServiceUnavailable

logger = logging.getLogger(__name__)

MINUTE_TTL = 120
DAY_TTL = 2 * 86400
MONTH_TTL = 32 * 86400


@dataclass(frozen=True, slots=True)
class KeyLimits:
    key_id: int
    user_id: int
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    credits_per_day: int | None = None  # micro-credits
    credits_per_month: int | None = None  # micro-credits

    @classmethod
    def from_api_key(cls, api_key: Any) -> KeyLimits | None:
        limits = cls(
            key_id=api_key.pk,
            user_id=api_key.user_id,
            # The lower of the key's own limit and the staff ceiling on it.
            requests_per_minute=api_key.limit("requests_per_minute"),
            tokens_per_minute=api_key.limit("tokens_per_minute"),
            credits_per_day=api_key.limit("credits_per_day"),
            credits_per_month=api_key.limit("credits_per_month"),
        )
        return limits if limits.any else None

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.credits_per_day,
                self.credits_per_month,
            )
        )


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds on each counter: cache key -> (kind, amount)."""

    held: dict[str, tuple[str, int]] = field(default_factory=dict)


def key_limit_defaults() -> dict[str, int | None]:
    """The limits a new key starts with (settings `KEY_DEFAULT_*`; spend caps given in credits)."""

    def micro(credits: int | None) -> int | None:
        return None if credits is None else credits * MICRO_PER_CREDIT

    return {
        "requests_per_minute": settings.KEY_DEFAULT_REQUESTS_PER_MINUTE,
        "tokens_per_minute": settings.KEY_DEFAULT_TOKENS_PER_MINUTE,
        "credits_per_day": micro(settings.KEY_DEFAULT_CREDITS_PER_DAY),
        "credits_per_month": micro(settings.KEY_DEFAULT_CREDITS_PER_MONTH),
    }


def _period_starts(now: dt.datetime) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """(start, next start) of the current minute, UTC day and UTC month."""
    now = now.astimezone(dt.UTC)
    minute = now.replace(second=0, microsecond=0)
    day = minute.replace(hour=0, minute=0)
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return {
        "minute": (minute, minute + dt.timedelta(minutes=1)),
        "day": (day, day + dt.timedelta(days=1)),
        "month": (month, next_month),
    }


def _key(limits: KeyLimits, name: str, start: dt.datetime) -> str:
    return f"{settings.LIMITS_KEY_PREFIX}:{limits.key_id}:{name}:{start:%Y%m%d%H%M}"


def _retry_after(now: dt.datetime, until: dt.datetime) -> int:
    return max(1, int((until - now).total_seconds()) + 1)


def _reserve(cache_key: str, amount: int, *, ttl: int, seed=None) -> int:
    """Add `amount` to a counter (created on first use, from `seed()` when given); the new value."""
    if cache.get(cache_key) is None:
        # add() is atomic: of several workers seeding at once, one wins and the rest just incr.
        cache.add(cache_key, seed() if seed else 0, timeout=ttl)
    try:
        return cache.incr(cache_key, amount)
    except ValueError:
        # Expired between add() and incr(): start the counter again.
        cache.add(cache_key, 0, timeout=ttl)
        return cache.incr(cache_key, amount)


def _adjust(cache_key: str, delta: int) -> None:
    if delta == 0:
        return
    try:
        cache.incr(cache_key, delta)
    except ValueError:
        pass  # the window is over and its counter gone; nothing left to correct


def limits_admit(*, limits: KeyLimits | None, tokens: int, credits: int, now=None) -> Reservation:
    """Reserve one call's worst case on every limited counter of its key, or raise (reserving nothing).

    `tokens` is the call's worst case (prompt bound + max_tokens), `credits` its hold in micro-credits.
    """
    reservation = Reservation()
    if limits is None:
        return reservation
    now = now or timezone.now()
    periods = _period_starts(now)

    def seed_spend(since: dt.datetime):
        def seed() -> int:
            from monitoring.selectors import usage_credits_sum

            return usage_credits_sum(user_id=limits.user_id, api_key_id=limits.key_id, since=since)

        return seed

    checks = [
        # name, limit, amount, period, ttl, seed, what
        ("rpm", limits.requests_per_minute, 1, "minute", MINUTE_TTL, None, "requests per minute"),
        ("tpm", limits.tokens_per_minute, tokens, "minute", MINUTE_TTL, None, "tokens per minute"),
        (
            "cpd",
            limits.credits_per_day,
            credits,
            "day",
            DAY_TTL,
            seed_spend(periods["day"][0]),
            "credits per day",
        ),
        (
            "cpm",
            limits.credits_per_month,
            credits,
            "month",
            MONTH_TTL,
            seed_spend(periods["month"][0]),
            "credits per month",
        ),
    ]
    try:
        for name, limit, amount, period, ttl, seed, what in checks:
            if limit is None:
                continue
            if amount > limit:
                _release(reservation)
                shown = (
                    (format_credits(amount), format_credits(limit))
                    if name in ("cpd", "cpm")
                    else (amount, limit)
                )
                raise InvalidRequest(
                    f"This call's worst case ({shown[0]}) exceeds the key's limit of {shown[1]} {what}; "
                    "lower max_tokens or shorten the prompt.",
                    code="exceeds_key_limit",
                )
            start, end = periods[period]
            cache_key = _key(limits, name, start)
            total = _reserve(cache_key, amount, ttl=ttl, seed=seed)
            reservation.held[cache_key] = (name, amount)
            if total > limit:
                _release(reservation)
                code = "spend_cap_exceeded" if name in ("cpd", "cpm") else "rate_limited"
                raise RateLimited(
                    f"This key's limit of {what} is reached; retry after the {period} rolls over.",
                    code=code,
                    retry_after=_retry_after(now, end),
                )
    except (InvalidRequest, RateLimited):
        raise
    except Exception:
        # Redis down (or any cache failure): a limited key is refused rather than let through.
        logger.exception("rate-limit store unavailable")
        raise ServiceUnavailable("The rate-limit store is unavailable; try again shortly.")
    return reservation


def _release(reservation: Reservation) -> None:
    for cache_key, (_, amount) in reservation.held.items():
        _adjust(cache_key, -amount)
    reservation.held.clear()


def limits_settle(*, reservation: Reservation, tokens: int, credits: int) -> None:
    """Turn a call's reservation into what it used (requests stay counted); never raises."""
    used = {"tpm": tokens, "cpd": credits, "cpm": credits}
    try:
        for cache_key, (name, amount) in reservation.held.items():
            if name in used:
                _adjust(cache_key, used[name] - amount)
    except Exception:  # a counter left high only errs on the safe side until its window ends
        logger.warning("could not settle a rate-limit reservation", exc_info=True)
    reservation.held.clear()


class ApiKeyRateThrottle(BaseThrottle):
    """The key's requests-per-minute limit on the DRF APIs too, on the same counter as its chat calls."""

    def allow_request(self, request, view) -> bool:
        key = request.auth
        if getattr(key, "requests_per_minute", None) is None:
            return True
        # Raises RateLimited (429 with Retry-After, our error shape) when the minute is used up.
        limits_admit(
            limits=KeyLimits(key_id=key.pk, user_id=key.user_id, requests_per_minute=key.requests_per_minute),
            tokens=0,
            credits=0,
        )
        return True
