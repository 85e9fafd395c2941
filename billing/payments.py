"""Stripe calls: creating Checkout Sessions and verifying a PaymentIntent before crediting it.

No transaction is open while Stripe is called; crediting happens afterwards in
`services.topup_apply`, which is idempotent per payment.
"""

from __future__ import annotations

import logging

import stripe
from django.conf import settings

from smartspec.errors import Conflict, Forbidden, InvalidRequest, UpstreamUnavailable

from . import services
from .credits import format_credits, topup_cents_to_micro
from .models import TopUp

logger = logging.getLogger(__name__)

CURRENCY = "usd"


def stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise InvalidRequest("Payments are not configured on this server.", code="stripe_not_configured")
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, max_network_retries=2)


def _provider_error(exc: stripe.StripeError, *, action: str) -> Exception:
    # Stripe's own message may quote our request; log its code, tell the client only what failed.
    logger.warning("Stripe %s failed: %s (%s)", action, type(exc).__name__, getattr(exc, "code", None))
    if isinstance(exc, stripe.InvalidRequestError) and getattr(exc, "code", None) == "resource_missing":
        return InvalidRequest("Unknown payment.", code="payment_not_found")
    return UpstreamUnavailable(f"The payment provider could not {action}; try again later.")


def checkout_session_create(*, user, amount_cents: int, success_url: str, cancel_url: str) -> dict:
    """A Stripe Checkout Session for a top-up; the webhook credits it once it is paid."""
    services.topup_amount_check(amount_cents)
    client = stripe_client()
    user_ref = str(user.pk)
    credits = format_credits(topup_cents_to_micro(amount_cents))
    try:
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "client_reference_id": user_ref,
                "metadata": {"user_id": user_ref},
                # Copied onto the PaymentIntent so `payment_intent.succeeded` can name the user too.
                "payment_intent_data": {"metadata": {"user_id": user_ref}},
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": CURRENCY,
                            "unit_amount": amount_cents,
                            "product_data": {
                                "name": "SmartSpec Pro credits",
                                "description": f"{credits} credits",
                            },
                        },
                    }
                ],
                "success_url": success_url,
                "cancel_url": cancel_url,
            }
        )
    except stripe.StripeError as exc:
        raise _provider_error(exc, action="start the checkout")
    return {"checkout_url": session.url, "session_id": session.id}


def checkout_session_payment_intent(*, session_id: str) -> str:
    """The PaymentIntent of a paid Checkout Session whose event did not carry it, from Stripe itself.

    Crediting a session without its PaymentIntent would let `payment_intent.succeeded` credit the
    same payment again, so a session Stripe cannot tie to one is refused (the event fails and Stripe
    delivers it again later)."""
    client = stripe_client()
    try:
        session = client.v1.checkout.sessions.retrieve(session_id).to_dict()
    except stripe.StripeError as exc:
        raise _provider_error(exc, action="look up the checkout session")
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if session.get("id") != session_id or not isinstance(intent, str) or not intent.startswith("pi_"):
        raise Conflict(
            "This checkout session has no payment intent yet; it is not credited until it has one.",
            code="payment_intent_missing",
        )
    return intent


def topup_from_payment_intent(*, user, payment_id: str, amount_cents: int) -> tuple[TopUp, bool]:
    """Credit a PaymentIntent the caller says they paid, after Stripe confirms it is theirs and succeeded."""
    if not payment_id.startswith("pi_"):
        raise InvalidRequest(
            "payment_id must be a Stripe PaymentIntent id (pi_...).", code="invalid_payment_id"
        )
    client = stripe_client()
    try:
        intent = client.v1.payment_intents.retrieve(payment_id).to_dict()
    except stripe.StripeError as exc:
        raise _provider_error(exc, action="confirm the payment")
    metadata = intent.get("metadata") or {}
    if metadata.get("user_id") != str(user.pk):
        raise Forbidden("This payment does not belong to your account.", code="payment_not_yours")
    if intent.get("status") != "succeeded":
        raise InvalidRequest("This payment has not succeeded.", code="payment_not_succeeded")
    if intent.get("currency") != CURRENCY or intent.get("amount_received") != amount_cents:
        raise InvalidRequest("payment_usd does not match the amount paid.", code="payment_amount_mismatch")
    return services.topup_apply(
        user=user, amount_cents=amount_cents, payment_intent_id=intent["id"], source="api:topup"
    )
