"""Stripe webhook events: signature check, at-most-once recording, and a dispatch dict of handlers.

Each event is recorded under its unique id and processed in the same
transaction; a duplicate (even a concurrent one) finds the row and does
nothing. A failure rolls the work back and is stored on the event row, so staff
see it and Stripe's next delivery tries again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal

import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from smartspec.errors import APIError, InvalidRequest

from . import services
from .models import StripeEvent

logger = logging.getLogger(__name__)

Status = StripeEvent.Status
DUPLICATE = "duplicate"


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
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidRequest("Invalid Stripe signature.", code="invalid_signature")
    try:
        event = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise MalformedEvent("The event body is not JSON.")
    if not isinstance(event, dict):
        raise MalformedEvent("The event body is not a JSON object.")
    if not isinstance(event.get("id"), str) or not event["id"] or not isinstance(event.get("type"), str):
        raise MalformedEvent("The event has no id or type.")
    return event


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
    if not isinstance(user_ref, str) or not user_ref.isdigit():
        raise MalformedEvent("The payment does not name a user.")
    user = get_user_model().objects.filter(pk=int(user_ref)).first()
    if user is None:
        raise MalformedEvent("The payment names an unknown user.")
    return user


# --- Handlers --------------------------------------------------------------------


def _checkout_paid(event: dict) -> str:
    session = _object(event)
    if session.get("mode") != "payment" or session.get("payment_status") != "paid":
        # Async methods complete unpaid; `async_payment_succeeded` follows when the money arrives.
        return Status.IGNORED
    _usd(session)
    user = _user(session.get("client_reference_id") or (session.get("metadata") or {}).get("user_id"))
    services.topup_apply(
        user=user,
        amount_cents=_int(session, "amount_total"),
        payment_intent_id=_optional_str(session, "payment_intent"),
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


def _charge_refunded(event: dict) -> str:
    charge = _object(event)
    services.topup_refund_apply(
        payment_intent_id=_str(charge, "payment_intent"),
        charge_id=_str(charge, "id"),
        amount_refunded_cents=_int(charge, "amount_refunded"),
    )
    return Status.PROCESSED


def _dispute_created(event: dict) -> str:
    dispute = _object(event)
    services.dispute_open(
        payment_intent_id=_str(dispute, "payment_intent"),
        dispute_id=_str(dispute, "id"),
        amount_cents=_int(dispute, "amount"),
    )
    return Status.PROCESSED


def _dispute_closed(event: dict) -> str:
    dispute = _object(event)
    services.dispute_close(
        payment_intent_id=_str(dispute, "payment_intent"),
        dispute_id=_str(dispute, "id"),
        status=_str(dispute, "status"),
        amount_cents=_int(dispute, "amount"),
    )
    return Status.PROCESSED


HANDLERS: dict[str, Callable[[dict], str]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}


def stripe_event_process(*, event: dict) -> str:
    """Apply a verified event at most once; returns its status, or "duplicate" if it was already applied."""
    fields = {"type": event["type"], "payload": event, "livemode": bool(event.get("livemode"))}
    try:
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
            record.status = handler(event) if handler else Status.IGNORED
            record.error = ""
            record.processed_at = timezone.now()
            record.save(update_fields=["status", "error", "processed_at"])
            return record.status
    except Exception as exc:
        reason = exc.message if isinstance(exc, APIError) else f"{type(exc).__name__} while processing"
        StripeEvent.objects.update_or_create(
            event_id=event["id"], defaults={**fields, "status": Status.FAILED, "error": reason}
        )
        logger.warning("Stripe event %s (%s) failed: %s", event["id"], event["type"], reason)
        raise
