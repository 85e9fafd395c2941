"""Stripe webhook events: signature check, at-most-once recording, and a dispatch dict of handlers.

Each event is recorded under its unique id and processed in the same
transaction; a duplicate (even a concurrent one) finds the row and does
nothing. A failure rolls the work back and is stored on the event row, so staff
see it and Stripe's next delivery tries again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from smartspec.errors import APIError, InvalidRequest
from smartspec.jsonbody import InvalidJSON, json_loads

from . import payments, services
from .models import PendingClawback, StripeEvent

logger = logging.getLogger(__name__)

Status = StripeEvent.Status
DUPLICATE = "duplicate"
# Stripe's ids and types: `evt_...`, `checkout.session.completed` (the id column holds 255).
_EVENT_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


class MalformedEvent(InvalidRequest):
    code = "malformed_event"


def stripe_event_verify(*, payload: bytes, signature: str | None) -> dict:
    """The event in a webhook body, once its `Stripe-Signature` is proven (Stripe's 300 s tolerance)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidRequest(
            "Stripe webhooks are not configured on this server.", code="stripe_not_configured"
        )
    if not signature:
        raise InvalidRequest("Missing Stripe-Signature header.", code="signature_missing")
    tolerance = stripe.Webhook.DEFAULT_TOLERANCE
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidRequest("Invalid Stripe signature.", code="invalid_signature")
    # Stripe's library refuses only old timestamps; one far ahead is as suspect (a signature made to
    # be replayed later), so the 300 s window applies both ways.
    if _signed_at(signature) > time.time() + tolerance:
        raise InvalidRequest("Invalid Stripe signature.", code="invalid_signature")
    try:
        event = json_loads(payload, decimals=True)
    except InvalidJSON as exc:
        raise MalformedEvent(f"The event body is refused: {exc.message}")
    for name in ("id", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not _EVENT_TOKEN.fullmatch(value):
            raise MalformedEvent("The event has no valid id or type.")
    return event


def _signed_at(signature: str) -> int:
    """The `t=` of a header `verify_header` accepted (it read the same first `t` item)."""
    for item in signature.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise InvalidRequest("Invalid Stripe signature.", code="invalid_signature")


# --- Reading the event's object --------------------------------------------------


def _object(event: dict) -> dict:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise MalformedEvent("The event has no data.object.")
    return obj


def _str(obj: dict, key: str) -> str:
    value = obj.get(key)
    if isinstance(value, dict):
        # An expanded object (e.g. payment_intent) in place of its id.
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"The event's object has no valid {key}.")
    return value


def _optional_str(obj: dict, key: str) -> str | None:
    return _str(obj, key) if obj.get(key) else None


def _int(obj: dict, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"The event's object has no valid {key}.")
    return value


def _usd(obj: dict) -> None:
    if obj.get("currency") != "usd":
        raise MalformedEvent("Only USD payments are accepted.")


def _user(user_ref) -> object:
    # ASCII digits only: str.isdigit() and int() also take other scripts' digits ("٣" is 3).
    if not isinstance(user_ref, str) or not re.fullmatch(r"[0-9]{1,18}", user_ref):
        raise MalformedEvent("The payment does not name a user.")
    user = get_user_model().objects.filter(pk=int(user_ref)).first()
    if user is None:
        raise MalformedEvent("The payment names an unknown user.")
    return user


# --- Handlers --------------------------------------------------------------------


def _checkout_is_paid(session: dict) -> bool:
    # Async methods complete unpaid; `async_payment_succeeded` follows when the money arrives.
    return session.get("mode") == "payment" and session.get("payment_status") == "paid"


def _checkout_lookup(event: dict) -> dict:
    """Before the transaction: the PaymentIntent of a paid session whose event carries none, from
    Stripe (a payment is keyed on its PaymentIntent, so it is never credited without one)."""
    session = _object(event)
    if not _checkout_is_paid(session) or session.get("payment_intent"):
        return {}
    return {"payment_intent_id": payments.checkout_session_payment_intent(session_id=_str(session, "id"))}


def _checkout_paid(event: dict, *, payment_intent_id: str | None = None) -> str:
    session = _object(event)
    if not _checkout_is_paid(session):
        return Status.IGNORED
    _usd(session)
    user = _user(session.get("client_reference_id") or (session.get("metadata") or {}).get("user_id"))
    services.topup_apply(
        user=user,
        amount_cents=_int(session, "amount_total"),
        payment_intent_id=_optional_str(session, "payment_intent") or payment_intent_id,
        checkout_session_id=_str(session, "id"),
        source=event["type"],
    )
    return Status.PROCESSED


def _payment_intent_succeeded(event: dict) -> str:
    intent = _object(event)
    user_ref = (intent.get("metadata") or {}).get("user_id")
    if user_ref is None:
        # Not started by our checkout (e.g. another product on the same Stripe account).
        return Status.IGNORED
    _usd(intent)
    services.topup_apply(
        user=_user(user_ref),
        amount_cents=_int(intent, "amount_received"),
        payment_intent_id=_str(intent, "id"),
        source=event["type"],
    )
    return Status.PROCESSED


def _clawback_status(result) -> str:
    # Before its payment is credited a refund or dispute is kept, and applied when the payment lands.
    return Status.PENDING if isinstance(result, PendingClawback) else Status.PROCESSED


def _charge_refunded(event: dict) -> str:
    charge = _object(event)
    return _clawback_status(
        services.topup_refund_apply(
            payment_intent_id=_str(charge, "payment_intent"),
            charge_id=_str(charge, "id"),
            amount_refunded_cents=_int(charge, "amount_refunded"),
            event_id=event["id"],
        )
    )


def _dispute_created(event: dict) -> str:
    dispute = _object(event)
    return _clawback_status(
        services.dispute_open(
            payment_intent_id=_str(dispute, "payment_intent"),
            dispute_id=_str(dispute, "id"),
            amount_cents=_int(dispute, "amount"),
            event_id=event["id"],
        )
    )


def _dispute_closed(event: dict) -> str:
    dispute = _object(event)
    return _clawback_status(
        services.dispute_close(
            payment_intent_id=_str(dispute, "payment_intent"),
            dispute_id=_str(dispute, "id"),
            status=_str(dispute, "status"),
            amount_cents=_int(dispute, "amount"),
            event_id=event["id"],
        )
    )


HANDLERS: dict[str, Callable[..., str]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}


# Stripe API calls an event needs, made before its transaction opens (never while rows are locked).
LOOKUPS: dict[str, Callable[[dict], dict]] = {
    "checkout.session.completed": _checkout_lookup,
    "checkout.session.async_payment_succeeded": _checkout_lookup,
}


def stripe_event_process(*, event: dict) -> str:
    """Apply a verified event at most once; returns its status, or "duplicate" if it was already applied."""
    fields = {"type": event["type"], "payload": event, "livemode": bool(event.get("livemode"))}
    try:
        found = {}
        lookup = LOOKUPS.get(event["type"])
        if lookup is not None:
            if StripeEvent.objects.filter(event_id=event["id"]).exclude(status=Status.FAILED).exists():
                return DUPLICATE
            found = lookup(event)
        with transaction.atomic():
            record, created = StripeEvent.objects.get_or_create(
                event_id=event["id"], defaults={**fields, "status": Status.FAILED}
            )
            if not created:
                # Wait for any delivery of the same event still in flight, then look again.
                record = StripeEvent.objects.select_for_update().get(pk=record.pk)
                if record.status != Status.FAILED:
                    return DUPLICATE
            handler = HANDLERS.get(event["type"])
            record.status = handler(event, **found) if handler else Status.IGNORED
            record.error = ""
            record.processed_at = timezone.now()
            # A redelivery of a failed event may carry another payload: the row keeps what was applied.
            for name, value in fields.items():
                setattr(record, name, value)
            record.save(update_fields=["status", "error", "processed_at", "payload", "type", "livemode"])
            return record.status
    except Exception as exc:
        reason = exc.message if isinstance(exc, APIError) else f"{type(exc).__name__} while processing"
        record, created = StripeEvent.objects.get_or_create(
            event_id=event["id"], defaults={**fields, "status": Status.FAILED, "error": reason}
        )
        if not created:
            # A concurrent delivery may have succeeded meanwhile; never mark that one failed.
            StripeEvent.objects.filter(pk=record.pk, status=Status.FAILED).update(error=reason)
        logger.warning("Stripe event %s (%s) failed: %s", event["id"], event["type"], reason)
        raise
