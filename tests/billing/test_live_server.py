"""Acceptance through HTTP on a running server: uvicorn (two worker processes) on the test database."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from billing import selectors
from billing.credits import MICRO_PER_CREDIT
from billing.models import LedgerEntry, StripeEvent
from tests.billing import stripe_shapes as s
from tests.support import live_uvicorn, subprocess_database_url

C = MICRO_PER_CREDIT
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(transactional_db):
    env = {"DATABASE_URL": subprocess_database_url(), "STRIPE_WEBHOOK_SECRET": s.WEBHOOK_SECRET}
    with live_uvicorn(env) as base:
        yield base


def _post_event(base, payload: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/billing/stripe/webhook",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=30,
    )


def test_signed_checkout_delivered_20_times_at_once_credits_86956_once(server, user, other_user, fund):
    from gateway.keys import api_key_create

    fund(other_user, 5)
    evt = s.event(
        "checkout.session.completed",
        s.checkout_session(
            user_id=user.pk, cents=10000, session_id="cs_test_live", payment_intent="pi_3Live"
        ),
    )
    payload = s.body(evt)
    signature = s.sign(payload)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: _post_event(server, payload, signature), range(20)))

    assert [r.status_code for r in results] == [200] * 20
    assert sorted(r.json()["status"] for r in results) == ["duplicate"] * 19 + ["processed"]
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert LedgerEntry.objects.filter(kind="topup").count() == 1

    # A bad signature: 400 and nothing changes.
    forged = s.event(
        "checkout.session.completed",
        s.checkout_session(
            user_id=user.pk, cents=10000, session_id="cs_test_forged", payment_intent="pi_3Forged"
        ),
    )
    forged_payload = s.body(forged)
    response = _post_event(server, forged_payload, s.sign(forged_payload, secret="whsec_wrong"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert StripeEvent.objects.count() == 1

    # Each caller sees only their own ledger.
    _, alice_key = api_key_create(user=user, name="live")
    _, bob_key = api_key_create(user=other_user, name="live")
    alice = httpx.get(
        f"{server}/api/credits/transactions", headers={"Authorization": f"Bearer {alice_key}"}, timeout=10
    )
    bob = httpx.get(
        f"{server}/api/credits/transactions", headers={"Authorization": f"Bearer {bob_key}"}, timeout=10
    )
    assert [(r["kind"], r["credits"], r["reference"]) for r in alice.json()] == [
        ("topup", "86956.000000", "pi_3Live")
    ]
    assert [(r["kind"], r["credits"]) for r in bob.json()] == [("adjustment", "5.000000")]
    balance = httpx.get(
        f"{server}/api/credits/balance", headers={"Authorization": f"Bearer {alice_key}"}, timeout=10
    )
    assert balance.json() == {"credits": "86956.000000", "usd": "86.956000", "held": "0.000000"}
