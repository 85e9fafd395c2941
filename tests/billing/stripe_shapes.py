"""Stripe payloads in the shapes Stripe's API reference documents, and the real webhook signing scheme."""

import hashlib
import hmac
import itertools
import json
import time

WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"
_ids = itertools.count(1)


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header: t=...,v1=HMAC-SHA256(secret, f"{t}.{payload}")."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_type: str, obj: dict, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_1Test{next(_ids):010d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def checkout_session(
    *, user_id, cents: int, session_id: str, payment_intent: str | None, paid: bool = True
) -> dict:
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": cents,
        "amount_total": cents,
        "cancel_url": "http://testserver/?topup=cancelled",
        "client_reference_id": str(user_id),
        "created": int(time.time()) - 60,
        "currency": "usd",
        "customer": None,
        "customer_details": {
            "email": "alice@example.com",
            "name": "Alice",
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "expires_at": int(time.time()) + 86000,
        "livemode": False,
        "metadata": {"user_id": str(user_id)},
        "mode": "payment",
        "payment_intent": payment_intent,
        "payment_method_types": ["card"],
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete",
        "success_url": "http://testserver/?topup=success&session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "url": None,
    }


def payment_intent(*, intent_id: str, cents: int, user_id=None, status: str = "succeeded") -> dict:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": cents,
        "amount_capturable": 0,
        "amount_received": cents if status == "succeeded" else 0,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_abc",
        "confirmation_method": "automatic",
        "created": int(time.time()) - 60,
        "currency": "usd",
        "customer": None,
        "description": None,
        "latest_charge": f"ch_{intent_id[3:]}",
        "livemode": False,
        "metadata": {"user_id": str(user_id)} if user_id is not None else {},
        "payment_method": "pm_1TestCard",
        "payment_method_types": ["card"],
        "status": status,
    }


def charge(*, intent_id: str, cents: int, refunded_cents: int) -> dict:
    return {
        "id": f"ch_{intent_id[3:]}",
        "object": "charge",
        "amount": cents,
        "amount_captured": cents,
        "amount_refunded": refunded_cents,
        "captured": True,
        "created": int(time.time()) - 60,
        "currency": "usd",
        "disputed": False,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": intent_id,
        "refunded": refunded_cents == cents,
        "status": "succeeded",
    }


def dispute(*, dispute_id: str, intent_id: str, cents: int, status: str = "needs_response") -> dict:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": cents,
        "balance_transactions": [],
        "charge": f"ch_{intent_id[3:]}",
        "created": int(time.time()) - 60,
        "currency": "usd",
        "evidence_details": {
            "due_by": int(time.time()) + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_id,
        "reason": "fraudulent",
        "status": status,
    }


def body(evt: dict) -> bytes:
    return json.dumps(evt).encode()
