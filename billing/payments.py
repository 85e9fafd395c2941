"""Stripe calls: creating Checkout Sessions and verifying a PaymentIntent before crediting it.

No transaction is open while Stripe is called; crediting happens afterwards in
`services.topup_apply`, which is idempotent per payment.
"""

from __future__ import annotations

import logging

import stripe
from django.conf import settings

from smartspec.errors import Forbidden, InvalidRequest, UpstreamUnavailable

from . import services
from .credits import TOPUP_MAX_CENTS, TOPUP_MIN_CENTS, format_cents, format_credits, topup_cents_to_micro
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


def topup_amount_check(amount_cents: int) -> None:
    if not TOPUP_MIN_CENTS <= amount_cents <= TOPUP_MAX_CENTS:
        raise InvalidRequest(
            f"Top-ups must be between ${format_cents(TOPUP_MIN_CENTS)} and ${format_cents(TOPUP_MAX_CENTS)}.",
            code="amount_out_of_range",
        )


def checkout_session_create(*, user, amount_cents: int, success_url: str, cancel_url: str) -> dict:
    """A Stripe Checkout Session for a top-up; the webhook credits it once it is paid."""
    topup_amount_check(amount_cents)
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
