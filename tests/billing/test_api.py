"""Billing HTTP APIs: balance, transactions, Checkout and PaymentIntent top-ups (Stripe mocked with `responses`)."""

from urllib.parse import parse_qs

import pytest
import responses
from rest_framework.test import APIClient

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import LedgerEntry, TopUp
from tests.billing import stripe_shapes as s

C = MICRO_PER_CREDIT
pytestmark = pytest.mark.django_db

STRIPE = "https://api.stripe.com/v1"


def test_balance_shape(api_client, user, fund):
    fund(user, 86_956)
    hold = services.hold_place(user=user, amount=1_500_000, request_id="req-1")

    response = api_client.get("/api/credits/balance")

    assert response.status_code == 200
    assert response.json() == {"credits": "86956.000000", "usd": "86.956000", "held": "1.500000"}
    services.hold_release(hold_id=hold.pk)


def test_balance_of_a_new_user_is_zero(api_client):
    assert api_client.get("/api/credits/balance").json() == {
        "credits": "0.000000",
        "usd": "0.000000",
        "held": "0.000000",
    }


def test_balance_needs_a_key():
    response = APIClient().get("/api/credits/balance")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_transactions_newest_first_only_the_callers(api_client, user, other_user, fund):
    fund(user, 10)
    fund(other_user, 99)
    hold = services.hold_place(user=user, amount=3 * C, request_id="req-usage-1")
    services.hold_settle(hold_id=hold.pk, amount=2 * C, description="openai/gpt-4o")

    response = api_client.get("/api/credits/transactions")

    assert response.status_code == 200
    rows = response.json()
    assert [(r["kind"], r["credits"], r["balance_after"]) for r in rows] == [
        ("usage", "-2.000000", "8.000000"),
        ("adjustment", "10.000000", "10.000000"),
    ]
    assert rows[0]["reference"] == "req-usage-1"
    assert rows[0]["description"] == "openai/gpt-4o"
    assert set(rows[0]) == {
        "id",
        "kind",
        "credits",
        "balance_after",
        "description",
        "reference",
        "created_at",
    }


def test_transactions_limit(api_client, user, fund):
    for _ in range(5):
        fund(user, 1)
    assert len(api_client.get("/api/credits/transactions?limit=3").json()) == 3
    assert len(api_client.get("/api/credits/transactions").json()) == 5


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "101"])
def test_transactions_bad_limit_is_400(api_client, limit):
    response = api_client.get(f"/api/credits/transactions?limit={limit}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_paging_with_starting_after_returns_every_entry_exactly_once(api_client, user, other_user, fund):
    for n in range(1, 231):
        fund(user, n)
        if n % 10 == 0:
            fund(other_user, 1)  # another account's entries interleave in the id sequence
    expected = list(
        LedgerEntry.objects.filter(account__user=user).order_by("-id").values_list("id", flat=True)
    )
    assert len(expected) == 230

    seen, pages, cursor = [], 0, None
    while True:
        url = "/api/credits/transactions?limit=100" + (f"&starting_after={cursor}" if cursor else "")
        response = api_client.get(url)
        assert response.status_code == 200
        page = response.json()
        assert isinstance(page, list)  # the list shape is kept; the cursor is the last id
        if pages == 0:
            fund(user, 7)  # an entry arriving mid-paging is newer than the cursor: no shift, no repeat
        if not page:
            break
        pages += 1
        seen.extend(row["id"] for row in page)
        cursor = page[-1]["id"]
    assert pages == 3  # 100 + 100 + 30, then the empty list
    assert seen == expected  # every entry once, newest first
    credits = [
        row["credits"]
        for row in api_client.get(f"/api/credits/transactions?starting_after={expected[-2]}").json()
    ]
    assert credits == ["1.000000"]  # below the second-oldest is only the oldest


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5"])
def test_transactions_bad_starting_after_is_400(api_client, value):
    response = api_client.get(f"/api/credits/transactions?starting_after={value}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


# --- Checkout ---------------------------------------------------------------------


def _session_response(session_id="cs_test_a1Checkout", cents=10000):
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": cents,
        "amount_total": cents,
        "client_reference_id": "1",
        "currency": "usd",
        "livemode": False,
        "metadata": {"user_id": "1"},
        "mode": "payment",
        "payment_intent": None,
        "payment_status": "unpaid",
        "status": "open",
        "url": f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
    }


@responses.activate
def test_checkout_creates_a_stripe_session(api_client, user, stripe_settings):
    responses.post(f"{STRIPE}/checkout/sessions", json=_session_response())

    response = api_client.post("/api/billing/checkout", {"amount_usd": "100.00"}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1Checkout#fidkdWxOYHwnPyd1blpxYHZxWjA0",
        "session_id": "cs_test_a1Checkout",
    }
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer sk_test_suite_key"
    form = parse_qs(sent.body)
    assert form["mode"] == ["payment"]
    assert form["client_reference_id"] == [str(user.pk)]
    assert form["metadata[user_id]"] == [str(user.pk)]
    assert form["payment_intent_data[metadata][user_id]"] == [str(user.pk)]
    assert form["line_items[0][price_data][unit_amount]"] == ["10000"]
    assert form["line_items[0][price_data][currency]"] == ["usd"]
    assert form["success_url"][0].startswith("http://testserver/?topup=success")
    # Nothing is credited until Stripe says it is paid.
    assert selectors.balance_get(user=user)["balance"] == 0


@responses.activate
def test_checkout_accepts_the_50_cent_minimum(api_client, stripe_settings):
    responses.post(f"{STRIPE}/checkout/sessions", json=_session_response(cents=50))
    assert api_client.post("/api/billing/checkout", {"amount_usd": "0.50"}, format="json").status_code == 200
    assert parse_qs(responses.calls[0].request.body)["line_items[0][price_data][unit_amount]"] == ["50"]


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("0.49", "amount_out_of_range"),
        ("10000.01", "amount_out_of_range"),
        ("1.005", "invalid_request"),
        ("-5", "invalid_request"),
        ("abc", "invalid_request"),
        (None, "invalid_request"),
    ],
)
@responses.activate
def test_checkout_rejects_bad_amounts_without_calling_stripe(api_client, stripe_settings, amount, code):
    response = api_client.post("/api/billing/checkout", {"amount_usd": amount}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert len(responses.calls) == 0


def test_checkout_without_stripe_configured_is_400(api_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = api_client.post("/api/billing/checkout", {"amount_usd": "10"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "stripe_not_configured"


@responses.activate
def test_checkout_when_stripe_fails_is_502_without_leaking_its_message(api_client, stripe_settings):
    responses.post(
        f"{STRIPE}/checkout/sessions",
        status=500,
        json={"error": {"message": "Internal sk_test_suite_key trouble", "type": "api_error"}},
    )
    response = api_client.post("/api/billing/checkout", {"amount_usd": "10"}, format="json")
    assert response.status_code == 502
    assert "sk_test" not in response.content.decode()


# --- PaymentIntent top-up -----------------------------------------------------------


def _mock_intent(intent):
    responses.get(f"{STRIPE}/payment_intents/{intent['id']}", json=intent)


@responses.activate
def test_topup_credits_a_verified_payment_intent_once(api_client, user, stripe_settings):
    _mock_intent(s.payment_intent(intent_id="pi_3TopUp", cents=777, user_id=user.pk))

    first = api_client.post(
        "/api/credits/topup", {"payment_usd": "7.77", "payment_id": "pi_3TopUp"}, format="json"
    )
    again = api_client.post(
        "/api/credits/topup", {"payment_usd": "7.77", "payment_id": "pi_3TopUp"}, format="json"
    )

    assert first.status_code == 200
    assert first.json() == {
        "payment_id": "pi_3TopUp",
        "credits_added": "6756.000000",
        "already_applied": False,
        "balance": {"credits": "6756.000000", "usd": "6.756000", "held": "0.000000"},
    }
    assert again.status_code == 200
    assert again.json()["already_applied"] is True
    assert selectors.balance_get(user=user)["balance"] == 6_756 * C
    assert LedgerEntry.objects.filter(kind="topup").count() == 1


@responses.activate
def test_topup_then_webhook_for_the_same_payment_credits_once(api_client, user, deliver):
    intent = s.payment_intent(intent_id="pi_3Both", cents=10000, user_id=user.pk)
    _mock_intent(intent)
    api_client.post("/api/credits/topup", {"payment_usd": "100", "payment_id": "pi_3Both"}, format="json")
    deliver(s.event("payment_intent.succeeded", intent))
    session = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_both", payment_intent="pi_3Both"
    )
    deliver(s.event("checkout.session.completed", session))
    assert selectors.balance_get(user=user)["balance"] == 86_956 * C
    assert TopUp.objects.get().checkout_session_id == "cs_test_both"


@pytest.mark.parametrize(
    ("intent_kwargs", "payment_usd", "status", "code"),
    [
        ({"status": "processing"}, "100", 400, "payment_not_succeeded"),
        ({"status": "requires_payment_method"}, "100", 400, "payment_not_succeeded"),
        ({}, "99.99", 400, "payment_amount_mismatch"),
        ({"user_id": "other"}, "100", 403, "payment_not_yours"),
        ({"user_id": None}, "100", 403, "payment_not_yours"),
    ],
)
@responses.activate
def test_topup_refuses_payments_that_do_not_check_out(
    api_client, user, stripe_settings, intent_kwargs, payment_usd, status, code
):
    kwargs = {"intent_id": "pi_3Bad", "cents": 10000, "user_id": user.pk, **intent_kwargs}
    _mock_intent(s.payment_intent(**kwargs))

    response = api_client.post(
        "/api/credits/topup", {"payment_usd": payment_usd, "payment_id": "pi_3Bad"}, format="json"
    )

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not TopUp.objects.exists()
    assert selectors.balance_get(user=user)["balance"] == 0


@responses.activate
def test_topup_with_an_unknown_payment_intent_is_400(api_client, stripe_settings):
    responses.get(
        f"{STRIPE}/payment_intents/pi_3Nope",
        status=404,
        json={
            "error": {
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": "No such payment_intent: 'pi_3Nope'",
                "param": "intent",
                "type": "invalid_request_error",
            }
        },
    )
    response = api_client.post(
        "/api/credits/topup", {"payment_usd": "5", "payment_id": "pi_3Nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_not_found"


@pytest.mark.parametrize(
    "body",
    [{"payment_usd": "5"}, {"payment_id": "pi_3X"}, {"payment_usd": "5", "payment_id": "cs_test_x"}, {}],
)
@responses.activate
def test_topup_bad_input_is_400_without_calling_stripe(api_client, stripe_settings, body):
    response = api_client.post("/api/credits/topup", body, format="json")
    assert response.status_code == 400
    assert len(responses.calls) == 0
