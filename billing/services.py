"""Billing services: every write to credits goes through these functions.

Each balance change is one atomic block that locks the rows it touches in a
fixed order (hold, then account, then top-up) and writes the ledger entry
together with the cached balance, so balance == sum(entries) always holds and
no balance goes below zero under any concurrency.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from smartspec import metrics
from smartspec.errors import Conflict, InsufficientCredits, InvalidRequest
from smartspec.postgresql.base import prepared_cursor

from .credits import (
    MICRO_PER_CREDIT,
    TOPUP_MAX_CENTS,
    TOPUP_MIN_CENTS,
    credits_per_usd,
    format_cents,
    format_credits,
    topup_cents_to_micro,
    topup_markup_percent,
)
from .models import CreditAccount, CreditHold, LedgerEntry, PendingClawback, StripeEvent, TopUp

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind


def _check_amount(amount: int, *, what: str = "amount", allow_zero: bool = True) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"{what} must be an integer number of micro-credits, got {amount!r}")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {amount}")


def _lock_account(account_id: int) -> CreditAccount:
    return CreditAccount.objects.select_for_update().get(pk=account_id)


def _entry_post(
    *,
    account: CreditAccount,
    kind: str,
    amount: int,
    reference: str = "",
    description: str = "",
    actor=None,
    hold: CreditHold | None = None,
) -> LedgerEntry:
    """Append one entry and move the cached balance with it. `account` must be locked."""
    account.balance += amount
    account.save(update_fields=["balance", "held", "owed", "updated_at"])
    metrics.ledger_entry(kind)
    return LedgerEntry.objects.create(
        account=account,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        reference=reference,
        description=description[:500],
        actor=actor,
        hold=hold,
    )


def _owed_collect(*, account: CreditAccount, reason: str) -> LedgerEntry | None:
    """Pay down what the account owes from the credits now available (a hold resolved, a top-up or a
    staff credit landed). `account` must be locked; saved when anything is collected."""
    collect = min(account.owed, max(0, account.balance - account.held))
    if collect <= 0:
        return None
    account.owed -= collect
    return _entry_post(
        account=account,
        kind=Kind.OWED_COLLECTED,
        amount=-collect,
        description=f"Owed credits collected: {reason}",
    )


def account_get_or_create(*, user) -> CreditAccount:
    account, _ = CreditAccount.objects.get_or_create(user=user)
    return account


# --- Holds -------------------------------------------------------------------


# user id -> account id, per process: the hot path's hold then needs no cache round trip either.
_account_ids: dict[int, int] = {}
_ACCOUNT_IDS_MAX = 10_000


def _account_id_for(user, *, refresh: bool = False) -> int:
    """The user's account id, cached: an account never moves to another user nor is deleted while
    its user exists. Writers filter on both ids, so a stale entry can only miss, never misdirect
    (and a miss is retried with `refresh`)."""
    if not refresh and (account_id := _account_ids.get(user.pk)) is not None:
        return account_id
    key = f"billing:account-id:{user.pk}"
    account_id = None if refresh else cache.get(key)
    if account_id is None:
        account_id = account_get_or_create(user=user).pk
        cache.set(key, account_id, 24 * 3600)
    if len(_account_ids) >= _ACCOUNT_IDS_MAX:
        _account_ids.clear()
    _account_ids[user.pk] = account_id
    return account_id


# Table names come from the models, values are bound parameters. `{commit}` is empty, or (a hold on
# its own, below) a condition that turns this transaction's wait for its WAL flush off as the hold is
# placed (a refused hold writes nothing, so it has no flush to wait for).
_HOLD_PLACE_TEMPLATE = f"""
WITH account AS (
    UPDATE {CreditAccount._meta.db_table}
    SET held = held + %(amount)s, updated_at = %(now)s
    WHERE id = %(account_id)s AND user_id = %(user_id)s AND owed = 0
      AND balance >= held + %(amount)s{{commit}}
    RETURNING id
)
INSERT INTO {CreditHold._meta.db_table}
    (account_id, request_id, purpose, amount, state, charged, excess, expires_at, created_at)
SELECT id, %(request_id)s, 'usage', %(amount)s, 'held', 0, 0, %(expires_at)s, %(now)s FROM account
RETURNING id
"""  # noqa: S608
_HOLD_PLACE_SQL = _HOLD_PLACE_TEMPLATE.format(commit="")


def _statement_atomic():
    """A lone statement is its own transaction; inside a caller's, a savepoint keeps a failure
    (a duplicate request id) from aborting the caller's transaction."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


# A hold on its own (the gateway's, outside any transaction) does not wait for its WAL flush: the
# account row's lock is then held for the statement only, not for a disk write. It moves no money
# (balance and ledger are untouched) and the call's settle, a durable commit, flushes the WAL up to it
# before any charge is answered. A PostgreSQL crash in between can only lose the hold itself; the
# call's settle then finds no hold and charges nothing. Balance and `held` stay in one transaction.
# The setting is made inside the statement (SET LOCAL would be a second statement, which a prepared
# statement cannot carry); PostgreSQL reads it when this statement's own transaction commits.
_HOLD_PLACE_ASYNC_SQL = _HOLD_PLACE_TEMPLATE.format(
    commit="\n      AND set_config('synchronous_commit', 'off', true) = 'off'"
)


def _hold_place_pg(*, account_id, user_id, amount, request_id, now, expires_at) -> CreditHold | None:
    """The conditional UPDATE and the hold's INSERT as one statement: the account row is locked
    inside the server only, never while this thread waits for the GIL or the network."""
    # Inside a caller's transaction the caller's commit decides (and SET LOCAL would reach it).
    lone = not connection.in_atomic_block and settings.HOLD_ASYNC_COMMIT
    with _statement_atomic(), prepared_cursor(connection) as cursor:
        cursor.execute(
            _HOLD_PLACE_ASYNC_SQL if lone else _HOLD_PLACE_SQL,
            {
                "amount": amount,
                "now": now,
                "account_id": account_id,
                "user_id": user_id,
                "request_id": request_id,
                "expires_at": expires_at,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return CreditHold(
        id=row[0],
        account_id=account_id,
        request_id=request_id,
        purpose=CreditHold.Purpose.USAGE,
        amount=amount,
        state=CreditHold.State.HELD,
        expires_at=expires_at,
        created_at=now,
    )


def _hold_place_orm(*, account_id, user_id, amount, request_id, now, expires_at) -> CreditHold | None:
    """The same in one transaction (SQLite); a duplicate request id rolls the whole hold back."""
    with transaction.atomic():
        # One conditional UPDATE: concurrent holds re-check the row after waiting for its lock.
        placed = CreditAccount.objects.filter(
            pk=account_id, user_id=user_id, owed=0, balance__gte=F("held") + amount
        ).update(held=F("held") + amount, updated_at=now)
        if not placed:
            return None
        return CreditHold.objects.create(
            account_id=account_id, request_id=request_id, amount=amount, expires_at=expires_at
        )


def _request_id_reused(*, account_id: int, request_id: str) -> Conflict:
    """The caller's own request id already named a call (ids are unique per account only)."""
    previous = CreditHold.objects.filter(account_id=account_id, request_id=request_id).first()
    shown = request_id[:64]
    if previous is not None and previous.state == CreditHold.State.HELD:
        message = f"Request id {shown!r} is already used by a call of yours still in progress."
    else:
        message = (
            f"Request id {shown!r} was already used by an earlier call of yours; "
            "send a new X-Request-ID for a new call."
        )
    return Conflict(message, code="duplicate_request_id")


def hold_place(*, user, amount: int, request_id: str, ttl_seconds: int = 900) -> CreditHold:
    """Reserve `amount` micro-credits for one call, only if the available credits cover it.

    On the hot path this is one statement on PostgreSQL (one transaction elsewhere)."""
    _check_amount(amount)
    if not request_id:
        raise ValueError("request_id is required")
    account = None
    for refresh in (False, True):
        account_id = _account_id_for(user, refresh=refresh)
        now = timezone.now()
        try:
            place = _hold_place_pg if connection.vendor == "postgresql" else _hold_place_orm
            hold = place(
                account_id=account_id,
                user_id=user.pk,
                amount=amount,
                request_id=request_id,
                now=now,
                expires_at=now + timedelta(seconds=ttl_seconds),
            )
            if hold is not None:
                return hold
        except IntegrityError:
            raise _request_id_reused(account_id=account_id, request_id=request_id)
        account = CreditAccount.objects.filter(pk=account_id, user_id=user.pk).first()
        if account is not None:
            break
    if account.owed:
        raise InsufficientCredits(
            f"This account owes {format_credits(account.owed)} credits from a refund or dispute; they are "
            "collected as your running calls finish and from your next top-up.",
            code="account_shortfall",
        )
    raise InsufficientCredits(
        f"Not enough credits: this request may cost up to {format_credits(amount)} credits, "
        f"{format_credits(max(0, account.available))} available."
    )


def _hold_close(*, hold: CreditHold, account: CreditAccount, state: str) -> None:
    account.held -= hold.amount
    hold.state = state
    hold.closed_at = timezone.now()


# Lock the open hold, then its account (the order every writer uses); charge at most the hold (and
# never below zero); move the balance, close the hold and append the ledger entry. Each CTE sees the
# rows locked before it (PostgreSQL re-reads a locked row's newest version), so this is the ORM
# path below in one statement.
_HOLD_SETTLE_SQL = f"""
WITH hold AS (
    SELECT id, account_id, amount, request_id FROM {CreditHold._meta.db_table}
    WHERE id = %(hold_id)s AND state = 'held' AND purpose = 'usage'
    FOR UPDATE
), calc AS (
    SELECT a.id AS account_id, hold.id AS hold_id, hold.amount AS hold_amount, hold.request_id,
           a.balance, a.held, a.owed,
           LEAST(%(amount)s, hold.amount, GREATEST(0, a.balance - (a.held - hold.amount))) AS charge
    FROM {CreditAccount._meta.db_table} a JOIN hold ON a.id = hold.account_id
    FOR UPDATE OF a
), due AS (
    SELECT calc.*,
           LEAST(calc.owed, GREATEST(0, calc.balance - calc.charge - (calc.held - calc.hold_amount)))
               AS collect
    FROM calc
), account AS (
    -- From the figures `calc` read under its lock, not from this UPDATE's own scan of the row (a
    -- concurrent clawback may have committed between the statement's snapshot and that lock).
    UPDATE {CreditAccount._meta.db_table} a
    SET held = due.held - due.hold_amount, balance = due.balance - due.charge - due.collect,
        owed = due.owed - due.collect, updated_at = %(now)s
    FROM due WHERE a.id = due.account_id
    RETURNING a.id, a.balance
), closed AS (
    UPDATE {CreditHold._meta.db_table} h
    SET state = 'settled', closed_at = %(now)s, charged = due.charge, excess = %(amount)s - due.charge
    FROM due WHERE h.id = due.hold_id
    RETURNING h.id
), entry AS (
    INSERT INTO {LedgerEntry._meta.db_table}
        (account_id, kind, amount, balance_after, reference, description, actor_id, hold_id, created_at)
    SELECT rows.account_id, rows.kind, rows.amount, rows.balance_after, rows.reference, rows.description,
           NULL, rows.hold_id, %(now)s
    FROM (
        SELECT 1 AS ord, account.id AS account_id, 'usage' AS kind, -due.charge AS amount,
               account.balance + due.collect AS balance_after,
               COALESCE(NULLIF(%(reference)s, ''), due.request_id) AS reference,
               %(description)s AS description, due.hold_id AS hold_id
        FROM due, account WHERE due.charge > 0
        UNION ALL
        -- What a refund or dispute could not take while this call held it, paid from what it freed.
        SELECT 2, account.id, 'owed_collected', -due.collect, account.balance, '',
               %(collect_prefix)s || due.request_id || ' finished', NULL
        FROM due, account WHERE due.collect > 0
    ) rows ORDER BY rows.ord
    RETURNING id, account_id, kind, amount, balance_after, reference
)
SELECT due.charge, due.request_id, (SELECT id FROM closed), entry.id, entry.account_id, entry.amount,
       entry.balance_after, entry.reference, due.collect
FROM due LEFT JOIN entry ON entry.kind = 'usage'
"""  # noqa: S608

_COLLECT_PREFIX = "Owed credits collected: call "


def _hold_settle_pg(*, hold_id: int, amount: int, description: str, reference: str) -> LedgerEntry | None:
    """`hold_settle` as one statement: the account row is locked inside the server only."""
    now = timezone.now()
    description = description[:500]
    with _statement_atomic(), prepared_cursor(connection) as cursor:
        cursor.execute(
            _HOLD_SETTLE_SQL,
            {
                "hold_id": hold_id,
                "amount": amount,
                "now": now,
                "reference": reference,
                "description": description,
                "collect_prefix": _COLLECT_PREFIX,
            },
        )
        row = cursor.fetchone()
    if row is None:
        if not CreditHold.objects.filter(pk=hold_id).exists():
            raise ValueError(f"no credit hold {hold_id}")
        return None
    charge, request_id, _closed, entry_id, account_id, entry_amount, balance_after, entry_ref, collect = row
    if collect:  # what the call's end paid of what the account owed: an entry of its own
        metrics.ledger_entry(Kind.OWED_COLLECTED)
    if amount > charge:
        logger.warning(
            "Usage of %s credits for request %s exceeded its hold; %s not charged (flagged)",
            format_credits(amount),
            request_id,
            format_credits(amount - charge),
        )
    if entry_id is None:
        return None
    metrics.ledger_entry(Kind.USAGE)
    return LedgerEntry(
        id=entry_id,
        account_id=account_id,
        kind=Kind.USAGE,
        amount=entry_amount,
        balance_after=balance_after,
        reference=entry_ref,
        description=description,
        hold_id=hold_id,
        created_at=now,
    )


def hold_settle(
    *, hold_id: int, amount: int, description: str = "", reference: str = ""
) -> LedgerEntry | None:
    """Charge the real cost of a call against its hold and release the rest.

    Never charges more than the hold (DESIGN: a customer is never charged more
    than the call's hold); the cost above it is recorded on the hold as
    `excess`, the operator's loss, and logged. A hold that is no longer open is left
    alone and None is returned, so a late or repeated settle never charges twice.
    """
    _check_amount(amount)
    if amount and connection.vendor == "postgresql":
        return _hold_settle_pg(hold_id=hold_id, amount=amount, description=description, reference=reference)
    return _hold_settle_orm(hold_id=hold_id, amount=amount, description=description, reference=reference)


def _hold_settle_orm(*, hold_id: int, amount: int, description: str, reference: str) -> LedgerEntry | None:
    """`hold_settle` through the ORM (SQLite, and every release-by-settle of a zero cost)."""
    with transaction.atomic():
        # One SELECT ... FOR UPDATE locks the hold and its account together (hold first, as everywhere).
        hold = CreditHold.objects.select_for_update().select_related("account").filter(pk=hold_id).first()
        if hold is None:
            raise ValueError(f"no credit hold {hold_id}")
        if hold.state != CreditHold.State.HELD or hold.purpose != CreditHold.Purpose.USAGE:
            return None
        account = hold.account
        if amount == 0:
            _hold_close(hold=hold, account=account, state=CreditHold.State.RELEASED)
            account.save(update_fields=["held", "updated_at"])
            hold.save(update_fields=["state", "closed_at"])
            _owed_collect(account=account, reason=f"call {hold.request_id} finished")
            return None
        _hold_close(hold=hold, account=account, state=CreditHold.State.SETTLED)
        charge = min(amount, hold.amount, max(0, account.balance - account.held))
        hold.charged = charge
        hold.excess = amount - charge
        if hold.excess:
            logger.warning(
                "Usage of %s credits for request %s exceeded its hold; %s not charged (flagged)",
                format_credits(amount),
                hold.request_id,
                format_credits(hold.excess),
            )
        entry = None
        if charge:
            entry = _entry_post(
                account=account,
                kind=Kind.USAGE,
                amount=-charge,
                reference=reference or hold.request_id,
                description=description,
                hold=hold,
            )
        else:
            account.save(update_fields=["held", "updated_at"])
        hold.save(update_fields=["state", "closed_at", "charged", "excess"])
        _owed_collect(account=account, reason=f"call {hold.request_id} finished")
        return entry


def hold_release(*, hold_id: int) -> None:
    """Give a hold's credits back untouched (the call failed). Idempotent."""
    with transaction.atomic():
        hold = CreditHold.objects.select_for_update().filter(pk=hold_id).first()
        if hold is None or hold.state != CreditHold.State.HELD:
            return
        account = _lock_account(hold.account_id)
        _hold_close(hold=hold, account=account, state=CreditHold.State.RELEASED)
        account.save(update_fields=["held", "updated_at"])
        hold.save(update_fields=["state", "closed_at"])
        _owed_collect(account=account, reason=f"call {hold.request_id} finished")


def holds_expire(
    *,
    now: datetime | None = None,
    batch_size: int = 500,
    keep: Callable[[list[int]], set[int]] | None = None,
) -> int:
    """Release usage holds past their expiry (left by a crashed worker); returns how many.

    `keep(ids)` names the holds of a batch to leave open: those whose settle is still on its way
    (journaled during a database outage), which must be charged, not expired."""
    now = now or timezone.now()
    stale = CreditHold.objects.filter(
        state=CreditHold.State.HELD, purpose=CreditHold.Purpose.USAGE, expires_at__lt=now
    )
    count, after = 0, 0
    while True:
        ids = list(stale.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return count
        after = ids[-1]
        kept = keep(ids) if keep is not None else set()
        for hold_id in ids:
            if hold_id in kept:
                continue
            with transaction.atomic():
                hold = CreditHold.objects.select_for_update().get(pk=hold_id)
                if hold.state != CreditHold.State.HELD:
                    continue
                account = _lock_account(hold.account_id)
                _hold_close(hold=hold, account=account, state=CreditHold.State.EXPIRED)
                hold.save(update_fields=["state", "closed_at"])
                # A zero entry: the balance is unchanged, but the ledger shows a call that was never settled.
                _entry_post(
                    account=account,
                    kind=Kind.HOLD_EXPIRY,
                    amount=0,
                    reference=hold.request_id,
                    description=f"Hold of {format_credits(hold.amount)} credits expired unsettled",
                    hold=hold,
                )
                _owed_collect(account=account, reason=f"call {hold.request_id} expired")
                count += 1


# --- Staff -------------------------------------------------------------------


def adjustment_create(*, user, amount: int, actor, reason: str) -> LedgerEntry:
    """A staff credit (positive) or debit (negative) with its reason; never below what is held."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise InvalidRequest("An adjustment must be a non-zero whole number of micro-credits.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("An adjustment needs a reason.", code="reason_required")
    account = account_get_or_create(user=user)
    with transaction.atomic():
        account = _lock_account(account.pk)
        if amount < 0 and -amount > account.available:
            raise InvalidRequest(
                f"Cannot debit {format_credits(-amount)} credits: "
                f"only {format_credits(max(0, account.available))} are available.",
                code="insufficient_credits",
            )
        entry = _entry_post(
            account=account, kind=Kind.ADJUSTMENT, amount=amount, description=reason, actor=actor
        )
        _owed_collect(account=account, reason="staff credit")
        return entry


def account_shortfall_clear(*, user, actor, reason: str) -> LedgerEntry:
    """Staff write off what the account still owes; the account may place holds again."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("Clearing a shortfall needs a reason.", code="reason_required")
    account = account_get_or_create(user=user)
    with transaction.atomic():
        account = _lock_account(account.pk)
        if not account.owed:
            raise InvalidRequest("This account owes nothing.")
        cleared = account.owed
        account.owed = 0
        return _entry_post(
            account=account,
            kind=Kind.SHORTFALL_CLEARED,
            amount=0,
            description=f"Wrote off {format_credits(cleared)} owed credits: {reason}",
            actor=actor,
        )


# --- Sign-up -----------------------------------------------------------------

SIGNUP_REFERENCE = "signup:{user_id}"
SIGNUP_REASON = "Starter credits for a new account (SIGNUP_CREDITS)"


def signup_credits_grant(*, user) -> LedgerEntry | None:
    """A new account's starter credits (`SIGNUP_CREDITS`, whole credits) as one ledger grant with
    its reason; once per account, whoever calls it again. None when the setting is 0."""
    credits = settings.SIGNUP_CREDITS
    if not credits:
        return None
    reference = SIGNUP_REFERENCE.format(user_id=user.pk)
    account = account_get_or_create(user=user)
    with transaction.atomic():
        account = _lock_account(account.pk)
        if LedgerEntry.objects.filter(kind=Kind.ADJUSTMENT, reference=reference).exists():
            return None
        return _entry_post(
            account=account,
            kind=Kind.ADJUSTMENT,
            amount=credits * MICRO_PER_CREDIT,
            reference=reference,
            description=SIGNUP_REASON,
        )


# --- Stripe payments ------------------------------------------------------------


def topup_amount_check(amount_cents: int) -> None:
    """One payment's bounds, for every way a payment arrives (Checkout, webhooks, the top-up API)."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise InvalidRequest(
            "The payment amount must be a whole number of cents.", code="amount_out_of_range"
        )
    if not TOPUP_MIN_CENTS <= amount_cents <= TOPUP_MAX_CENTS:
        raise InvalidRequest(
            f"Top-ups must be between ${format_cents(TOPUP_MIN_CENTS)} and ${format_cents(TOPUP_MAX_CENTS)}.",
            code="amount_out_of_range",
        )


def _cents_check(cents: int, *, what: str) -> None:
    # No payment of ours exceeds TOPUP_MAX_CENTS, so neither can a refund or a dispute of one.
    if isinstance(cents, bool) or not isinstance(cents, int) or not 0 <= cents <= TOPUP_MAX_CENTS:
        raise InvalidRequest(f"{what} must be a whole number of cents between 0 and {TOPUP_MAX_CENTS}.")


def _payment_lock(payment_intent_id: str) -> None:
    """Serialise everything about one payment (its crediting and its refunds and disputes) inside the
    caller's transaction, taken before any account lock. Without it a refund finding no top-up and a
    top-up finding no pending refund could both commit, and the refund would be lost. (SQLite runs one
    writer at a time anyway.)"""
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(
        hashlib.blake2b(payment_intent_id.encode(), digest_size=8).digest(), "big", signed=True
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def topup_apply(
    *,
    user,
    amount_cents: int,
    payment_intent_id: str,
    checkout_session_id: str | None = None,
    source: str,
) -> tuple[TopUp, bool]:
    """Credit one paid Stripe payment exactly once; returns (top-up, credited now).

    The payment is identified by its PaymentIntent, always (a Checkout Session that
    cannot be tied to its PaymentIntent is never credited, or one payment could be
    credited twice); a later call for the same payment (another event type, the
    top-up API, a replay) only fills in the missing session id. Refunds and
    disputes that arrived before the payment are applied right after it is
    credited, in the same transaction.
    """
    topup_amount_check(amount_cents)
    if not payment_intent_id:
        raise InvalidRequest("A payment intent id is required.", code="payment_intent_missing")
    account = account_get_or_create(user=user)
    with transaction.atomic():
        _payment_lock(payment_intent_id)
        # The account lock serialises every top-up of this user, so the lookup below cannot race.
        account = _lock_account(account.pk)
        match = Q(payment_intent_id=payment_intent_id)
        if checkout_session_id:
            match |= Q(checkout_session_id=checkout_session_id)
        existing = TopUp.objects.select_for_update().filter(match).order_by("pk").first()
        if existing is not None:
            if existing.user_id != user.pk:
                raise InvalidRequest("This payment belongs to another account.", code="payment_mismatch")
            if existing.amount_cents != amount_cents:
                logger.warning("Top-up %s seen again with a different amount; ignored", existing.pk)
            changed = []
            if not existing.payment_intent_id:
                existing.payment_intent_id = payment_intent_id
                changed.append("payment_intent_id")
            if checkout_session_id and not existing.checkout_session_id:
                existing.checkout_session_id = checkout_session_id
                changed.append("checkout_session_id")
            if changed:
                existing.save(update_fields=[*changed, "updated_at"])
            return existing, False
        credits = topup_cents_to_micro(amount_cents)
        topup = TopUp.objects.create(
            user=user,
            account=account,
            payment_intent_id=payment_intent_id,
            checkout_session_id=checkout_session_id or None,
            amount_cents=amount_cents,
            credits=credits,
            source=source,
            credits_per_usd=credits_per_usd(),
            markup_percent=topup_markup_percent(),
        )
        _entry_post(
            account=account,
            kind=Kind.TOPUP,
            amount=credits,
            reference=payment_intent_id,
            description=f"Top-up of ${format_cents(amount_cents)}",
        )
        _owed_collect(account=account, reason=f"top-up {payment_intent_id}")
        _pending_clawbacks_apply(topup=topup)
        topup.refresh_from_db()
        return topup, True


def _share(topup: TopUp, cents: int) -> int:
    """The credits bought by `cents` of this top-up (all of them for the full amount)."""
    return topup.credits * min(cents, topup.amount_cents) // topup.amount_cents


def _clawback(
    *, account: CreditAccount, topup: TopUp, amount: int, kind: str, reference: str, description: str
) -> LedgerEntry | None:
    """Take back what is available now; record the rest as owed (collected later).

    Credits that open holds reserve belong to the calls in flight (and to frozen disputes): taking
    them would make those calls free. Both rows must be locked; the caller saves `topup`.
    """
    amount = min(amount, topup.credits - topup.clawed_back)
    if amount <= 0:
        return None
    take = min(amount, max(0, account.balance - account.held))
    owed = amount - take
    topup.clawed_back += amount
    if owed:
        topup.owed += owed
        account.owed += owed
        logger.warning(
            "Clawback for top-up %s: %s credits owed (collected as holds resolve and from top-ups)",
            topup.pk,
            format_credits(owed),
        )
    if take:
        return _entry_post(
            account=account, kind=kind, amount=-take, reference=reference, description=description
        )
    account.save(update_fields=["owed", "updated_at"])
    return None


def _clawback_defer(*, payment_intent_id: str, kind: str, event_id: str, **fields) -> PendingClawback:
    """Keep a refund or dispute whose payment is not credited yet; `topup_apply` applies it."""
    for name, value in (("payment_intent", payment_intent_id), *fields.items()):
        # Stored as they came: refuse what the database would (a NUL, an over-long id) with a 400.
        if isinstance(value, str) and ("\x00" in value or len(value) > 255):
            raise InvalidRequest(f"The event's {name} is not a valid Stripe id.")
    logger.warning("%s for payment %s arrived before the payment; kept pending", kind, payment_intent_id)
    return PendingClawback.objects.create(
        payment_intent_id=payment_intent_id, kind=kind, stripe_event_id=event_id, **fields
    )


def _pending_clawbacks_apply(*, topup: TopUp) -> None:
    """Apply, in arrival order, the refunds and disputes that came before this payment. Inside the
    crediting transaction, under the payment's lock; each handler is the one the event would have run
    (they are order-insensitive: cumulative refunds, late dispute events ignored, clawbacks capped)."""
    pending = list(
        PendingClawback.objects.select_for_update()
        .filter(payment_intent_id=topup.payment_intent_id, applied_at__isnull=True)
        .order_by("pk")
    )
    now = timezone.now()
    for item in pending:
        if item.kind == PendingClawback.Kind.REFUND:
            _refund_apply_locked(
                topup_id=topup.pk, charge_id=item.charge_id, amount_refunded_cents=item.amount_cents
            )
        elif item.kind == PendingClawback.Kind.DISPUTE_OPEN:
            _dispute_open_locked(
                topup_id=topup.pk, dispute_id=item.dispute_id, amount_cents=item.amount_cents
            )
        else:
            _dispute_close_locked(
                topup_id=topup.pk,
                dispute_id=item.dispute_id,
                status=item.dispute_status,
                amount_cents=item.amount_cents,
            )
        item.applied_at = now
        item.save(update_fields=["applied_at"])
        if item.stripe_event_id:
            StripeEvent.objects.filter(
                event_id=item.stripe_event_id, status=StripeEvent.Status.PENDING
            ).update(status=StripeEvent.Status.PROCESSED, processed_at=now)


def _clawback_now_or_pending(payment_intent_id: str, *, apply: Callable[[int], Any], **pending) -> Any:
    """Under the payment's lock: `apply(topup_id)` when the payment is credited, else keep the
    event pending against it (`pending`: the PendingClawback fields), applied when it lands."""
    with transaction.atomic():
        _payment_lock(payment_intent_id)
        found = TopUp.objects.filter(payment_intent_id=payment_intent_id).first()
        if found is None:
            return _clawback_defer(payment_intent_id=payment_intent_id, **pending)
        return apply(found.pk)


def topup_refund_apply(
    *, payment_intent_id: str, charge_id: str, amount_refunded_cents: int, event_id: str = ""
) -> LedgerEntry | PendingClawback | None:
    """Debit the credits of the newly refunded share, from Stripe's cumulative `amount_refunded`.

    Partial refunds add up; a replay or an older figure is a no-op. Returns the
    entry written, None when there was nothing (or nothing left) to take, or the
    pending row when the payment is not credited yet (applied when it is).
    """
    _cents_check(amount_refunded_cents, what="amount_refunded")
    return _clawback_now_or_pending(
        payment_intent_id,
        apply=lambda topup_id: _refund_apply_locked(
            topup_id=topup_id, charge_id=charge_id, amount_refunded_cents=amount_refunded_cents
        ),
        kind=PendingClawback.Kind.REFUND,
        event_id=event_id,
        charge_id=charge_id,
        amount_cents=amount_refunded_cents,
    )


def _refund_apply_locked(*, topup_id: int, charge_id: str, amount_refunded_cents: int) -> LedgerEntry | None:
    found = TopUp.objects.get(pk=topup_id)
    account = _lock_account(found.account_id)
    topup = TopUp.objects.select_for_update().get(pk=topup_id)
    refunded = min(amount_refunded_cents, topup.amount_cents)
    if refunded <= topup.amount_refunded_cents:
        return None
    delta = _share(topup, refunded) - _share(topup, topup.amount_refunded_cents)
    topup.amount_refunded_cents = refunded
    if topup.dispute_status == "open":
        # Credits an open dispute of this same payment froze are this refund's to take: thaw as many
        # as it takes back, so a refund after the dispute opened ends as one before it.
        frozen = (
            CreditHold.objects.select_for_update()
            .filter(account=account, request_id=f"dispute:{topup.dispute_id}", state=CreditHold.State.HELD)
            .first()
        )
        thaw = min(frozen.amount, delta) if frozen is not None else 0
        if thaw:
            frozen.amount -= thaw
            frozen.save(update_fields=["amount"])
            account.held -= thaw
            account.save(update_fields=["held", "updated_at"])
    entry = _clawback(
        account=account,
        topup=topup,
        amount=delta,
        kind=Kind.REFUND,
        reference=f"{charge_id}:{refunded}",
        description=f"Refund (${format_cents(refunded)} refunded in total)",
    )
    topup.save(update_fields=["amount_refunded_cents", "clawed_back", "owed", "updated_at"])
    return entry


def dispute_open(
    *, payment_intent_id: str, dispute_id: str, amount_cents: int, event_id: str = ""
) -> CreditHold | PendingClawback | None:
    """Freeze the disputed top-up's credits (as much of them as is still available)."""
    _cents_check(amount_cents, what="The disputed amount")
    return _clawback_now_or_pending(
        payment_intent_id,
        apply=lambda topup_id: _dispute_open_locked(
            topup_id=topup_id, dispute_id=dispute_id, amount_cents=amount_cents
        ),
        kind=PendingClawback.Kind.DISPUTE_OPEN,
        event_id=event_id,
        dispute_id=dispute_id,
        amount_cents=amount_cents,
    )


def _dispute_open_locked(*, topup_id: int, dispute_id: str, amount_cents: int) -> CreditHold | None:
    found = TopUp.objects.get(pk=topup_id)
    account = _lock_account(found.account_id)
    topup = TopUp.objects.select_for_update().get(pk=topup_id)
    if topup.dispute_id == dispute_id and topup.dispute_status:
        # Already open, or closed before this (late) event arrived.
        return None
    wanted = min(_share(topup, amount_cents), topup.credits - topup.clawed_back)
    frozen = max(0, min(wanted, account.available))
    hold = CreditHold.objects.create(
        account=account,
        request_id=f"dispute:{dispute_id}",
        purpose=CreditHold.Purpose.DISPUTE,
        amount=frozen,
        expires_at=None,
    )
    account.held += frozen
    account.save(update_fields=["held", "updated_at"])
    topup.dispute_id = dispute_id
    topup.dispute_status = "open"
    topup.save(update_fields=["dispute_id", "dispute_status", "updated_at"])
    return hold


DISPUTE_RELEASED = ("won", "warning_closed")


def dispute_close(
    *, payment_intent_id: str, dispute_id: str, status: str, amount_cents: int, event_id: str = ""
) -> LedgerEntry | PendingClawback | None:
    """A closed dispute: won -> release the frozen credits; lost -> debit the disputed share."""
    _cents_check(amount_cents, what="The disputed amount")
    return _clawback_now_or_pending(
        payment_intent_id,
        apply=lambda topup_id: _dispute_close_locked(
            topup_id=topup_id, dispute_id=dispute_id, status=status, amount_cents=amount_cents
        ),
        kind=PendingClawback.Kind.DISPUTE_CLOSE,
        event_id=event_id,
        dispute_id=dispute_id,
        dispute_status=status[:40],
        amount_cents=amount_cents,
    )


def _dispute_close_locked(
    *, topup_id: int, dispute_id: str, status: str, amount_cents: int
) -> LedgerEntry | None:
    found = TopUp.objects.get(pk=topup_id)
    account = _lock_account(found.account_id)
    # Looked up under the account lock, which dispute_open holds while it creates the hold: a
    # created event racing this one has either committed its hold (found here) or will see the
    # dispute closed and freeze nothing. (Only this function locks dispute holds, so taking the
    # account first cannot deadlock with the usage path's hold-then-account order.)
    hold = (
        CreditHold.objects.select_for_update()
        .filter(account=account, request_id=f"dispute:{dispute_id}")
        .first()
    )
    topup = TopUp.objects.select_for_update().get(pk=topup_id)
    if topup.dispute_id == dispute_id and topup.dispute_status in ("won", "lost", "warning_closed"):
        return None
    lost = status == "lost"
    if hold is not None and hold.state == CreditHold.State.HELD:
        _hold_close(
            hold=hold,
            account=account,
            state=CreditHold.State.SETTLED if lost else CreditHold.State.RELEASED,
        )
    topup.dispute_id = dispute_id
    topup.dispute_status = status
    entry = None
    if lost:
        entry = _clawback(
            account=account,
            topup=topup,
            amount=_share(topup, amount_cents),
            kind=Kind.DISPUTE,
            reference=dispute_id,
            description="Chargeback: dispute lost",
        )
        if hold is not None and entry is not None:
            hold.charged = min(hold.amount, -entry.amount)
    topup.save(update_fields=["dispute_id", "dispute_status", "clawed_back", "owed", "updated_at"])
    account.save(update_fields=["held", "owed", "updated_at"])
    if hold is not None:
        hold.save(update_fields=["state", "closed_at", "charged"])
    # Credits the dispute froze and gave back pay what the account owes first.
    _owed_collect(account=account, reason=f"dispute {dispute_id} closed")
    return entry


# --- Checks ------------------------------------------------------------------


def ledger_reconcile() -> list[dict]:
    """Accounts whose cached balance or held amount disagrees with their rows (empty when all is well)."""
    entries = (
        LedgerEntry.objects.filter(account=OuterRef("pk"))
        .values("account")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    holds = (
        CreditHold.objects.filter(account=OuterRef("pk"), state=CreditHold.State.HELD)
        .values("account")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    mismatched = (
        CreditAccount.objects.annotate(
            ledger_sum=Coalesce(Subquery(entries), Value(0)), holds_sum=Coalesce(Subquery(holds), Value(0))
        )
        .exclude(balance=F("ledger_sum"), held=F("holds_sum"))
        .values("pk", "user_id", "balance", "ledger_sum", "held", "holds_sum")
    )
    problems = [
        {
            "account_id": row["pk"],
            "user_id": row["user_id"],
            "balance": row["balance"],
            "ledger_sum": row["ledger_sum"],
            "held": row["held"],
            "holds_sum": row["holds_sum"],
        }
        for row in mismatched
    ]
    for problem in problems:
        logger.error("Ledger mismatch: %s", problem)
    return problems
