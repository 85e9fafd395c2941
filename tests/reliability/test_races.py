"""Money under real concurrency on PostgreSQL: calls raced through a live uvicorn server, clawbacks
racing usage, and a worker killed between its hold and its settle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT, usd_to_micro
from billing.models import CreditAccount, CreditHold, LedgerEntry, TopUp
from smartspec.errors import InsufficientCredits
from tests.billing import stripe_shapes as s
from tests.billing.conftest import run_concurrently
from tests.reliability.conftest import ROOT, gateway_env, grant, live_gateway
from tests.reliability.fake_upstream import OPENROUTER_COST
from tests.support import subprocess_database_url

C = MICRO_PER_CREDIT
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CALLS = 120
HELLO = [{"role": "user", "content": "Say hello"}]


def _ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(account__user=user).aggregate(s=Sum("amount"))["s"] or 0


def _hold_for(settings, fake, body: dict) -> int:
    """The worst-case hold the gateway places for `body` (priced as the server will price it)."""
    from gateway.client import LLMRequest, chat_prepare_sync
    from gateway.service import _hold_amount

    settings.OPENROUTER_API_KEY = "sk-or-v1-fault-suite-key"
    settings.OPENROUTER_BASE_URL = fake.url("openrouter", "/api/v1")
    settings.DEBUG = False
    request = LLMRequest(messages=body["messages"], model=body["model"], max_tokens=body["max_tokens"])
    return _hold_amount(chat_prepare_sync(request))


def test_120_concurrent_calls_against_a_balance_for_a_handful(settings, fake, catalog, user, api_key):
    body = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100}
    hold = _hold_for(settings, fake, body)
    funds = 5 * hold + hold // 2  # five worst cases fit at once, a sixth does not
    services.adjustment_create(user=user, amount=funds, actor=None, reason="race funds")
    fake.script("openrouter", "slow_ok")
    cost = usd_to_micro(OPENROUTER_COST)

    with live_gateway(gateway_env(fake)) as base:

        def call(_):
            return httpx.post(
                f"{base}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=60,
            )

        with ThreadPoolExecutor(max_workers=CALLS) as pool:
            responses = list(pool.map(call, range(CALLS)))

    statuses = [r.status_code for r in responses]
    ok = statuses.count(200)
    assert set(statuses) == {200, 402}, statuses
    assert 5 <= ok < CALLS
    assert all(r.json()["error"]["code"] == "insufficient_credits" for r in responses if r.status_code == 402)
    # A refused call never reached the upstream; every answered one was charged exactly once.
    assert fake.count("openrouter") == ok
    assert LedgerEntry.objects.filter(account__user=user, kind="usage").count() == ok
    assert all(b'"credits":0.125000' in r.content for r in responses if r.status_code == 200)
    balance = selectors.balance_get(user=user)
    assert balance == {"balance": funds - ok * cost, "held": 0, "available": funds - ok * cost}
    assert balance["balance"] == _ledger_sum(user) >= 0
    assert not CreditHold.objects.filter(state="held").exists()
    assert services.ledger_reconcile() == []
    print(f"\nraced {CALLS} calls: {ok} answered and charged, {CALLS - ok} refused with 402, money lost: 0")


def _post(evt) -> int:
    payload = s.body(evt)
    return (
        Client()
        .post(
            "/api/billing/stripe/webhook",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=s.sign(payload),
        )
        .status_code
    )


@pytest.mark.parametrize("clawback", ["refund", "dispute_lost"])
def test_a_clawback_racing_usage_neither_creates_nor_loses_a_credit(user, stripe_settings, clawback):
    session = s.checkout_session(
        user_id=user.pk, cents=10000, session_id="cs_test_claw", payment_intent="pi_3Claw"
    )
    assert _post(s.event("checkout.session.completed", session)) == 200
    bought = 86_956 * C
    if clawback == "refund":
        events = [
            s.event("charge.refunded", s.charge(intent_id="pi_3Claw", cents=10000, refunded_cents=10000))
        ]
    else:
        events = [
            s.event(
                "charge.dispute.created", s.dispute(dispute_id="dp_1Claw", intent_id="pi_3Claw", cents=10000)
            ),
            s.event(
                "charge.dispute.closed",
                s.dispute(dispute_id="dp_1Claw", intent_id="pi_3Claw", cents=10000, status="lost"),
            ),
        ]
    users = 40

    def work(i):
        if i >= users:
            return _post(events[i - users])
        try:
            held = services.hold_place(user=user, amount=3_000 * C, request_id=f"race-{i}")
        except InsufficientCredits as exc:
            return exc.code
        time.sleep(0.01)
        services.hold_settle(hold_id=held.pk, amount=2_500 * C, reference=f"race-{i}")
        return "settled"

    results = run_concurrently(work, users + len(events))

    assert results[users:] == [200] * len(events)
    assert set(results[:users]) <= {"settled", "insufficient_credits", "account_shortfall"}
    settled = CreditHold.objects.filter(purpose="usage", state="settled")
    assert settled.count() == results.count("settled")
    # Every settled call is accounted for: charged, or flagged as excess when a clawback took its credits.
    totals = settled.aggregate(charged=Sum("charged"), excess=Sum("excess"))
    assert (totals["charged"] or 0) + (totals["excess"] or 0) == 2_500 * C * results.count("settled")
    usage = -(LedgerEntry.objects.filter(kind="usage").aggregate(s=Sum("amount"))["s"] or 0)
    assert usage == (totals["charged"] or 0)
    kind = "refund" if clawback == "refund" else "dispute"
    (claw,) = LedgerEntry.objects.filter(kind=kind)
    topup = TopUp.objects.get()
    # The whole purchase came back: what the clawback took plus what it could not (owed).
    assert -claw.amount + topup.owed == bought
    # What was owed is collected as the calls in flight finish (one entry per collection).
    collected = -(LedgerEntry.objects.filter(kind="owed_collected").aggregate(s=Sum("amount"))["s"] or 0)
    assert collected == topup.owed - CreditAccount.objects.get(user=user).owed
    # Calls in flight keep their credits: none was charged less than its cost.
    assert (totals["excess"] or 0) == 0
    balance = selectors.balance_get(user=user)
    assert balance["balance"] == bought - usage + claw.amount - collected == _ledger_sum(user) >= 0
    assert balance["held"] == 0 and not CreditHold.objects.filter(state="held").exists()
    assert services.ledger_reconcile() == []


KILLED_WORKER = """
import asyncio, django
django.setup()
from django.contrib.auth import get_user_model
from gateway.client import LLMRequest
from gateway.service import LLMGateway
user = get_user_model().objects.get(username="alice")
asyncio.run(LLMGateway().invoke(
    LLMRequest(messages=[{"role": "user", "content": "Say hello"}], model="openai/gpt-4o", max_tokens=100),
    user, request_id="req-killed-worker"))
"""


def test_a_worker_killed_between_hold_and_settle_gets_its_hold_expired_and_a_late_settle_charges_nothing(
    fake, catalog, user
):
    grant(user, 10)
    fake.stall = 60.0
    fake.script("openrouter", "read_timeout")
    env = {
        **os.environ,
        **gateway_env(fake, OPENROUTER_TIMEOUT="120"),
        "DJANGO_SETTINGS_MODULE": "smartspec.settings_test",
        "DATABASE_URL": subprocess_database_url(),
    }
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        # The hold is placed before the upstream is called: once the upstream has the request, kill.
        while fake.count("openrouter") == 0:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never called upstream"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL

    hold = CreditHold.objects.get(request_id="req-killed-worker")
    assert hold.state == "held"
    assert selectors.balance_get(user=user) == {
        "balance": 10 * C,
        "held": hold.amount,
        "available": 10 * C - hold.amount,
    }

    # Time passes beyond the hold's expiry; the beat job's task gives the credits back.
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    from billing.tasks import holds_expire_task

    assert holds_expire_task.delay().get(timeout=30) == 1
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}
    (expiry,) = LedgerEntry.objects.filter(kind="hold_expiry")
    assert (expiry.amount, expiry.reference) == (0, "req-killed-worker")

    # The settle arrives late (a worker that was only stuck): nothing is charged, twice or once.
    assert services.hold_settle(hold_id=hold.pk, amount=usd_to_micro(OPENROUTER_COST)) is None
    services.hold_release(hold_id=hold.pk)
    hold.refresh_from_db()
    assert (hold.state, hold.charged) == ("expired", 0)
    assert selectors.balance_get(user=user)["balance"] == 10 * C == _ledger_sum(user)
    assert not LedgerEntry.objects.filter(kind="usage").exists()
    assert services.ledger_reconcile() == []


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_dispute_created_and_closed_arriving_together_leave_no_credits_frozen(user, stripe_settings, outcome):
    """Stripe does not promise order: for 10 payments the dispute's created and closed events race."""
    events = []
    for n in range(10):
        session = s.checkout_session(
            user_id=user.pk, cents=10000, session_id=f"cs_test_dp{n}", payment_intent=f"pi_3Dp{n}"
        )
        assert _post(s.event("checkout.session.completed", session)) == 200
        events += [
            s.event(
                "charge.dispute.created",
                s.dispute(dispute_id=f"dp_1R{n}", intent_id=f"pi_3Dp{n}", cents=10000),
            ),
            s.event(
                "charge.dispute.closed",
                s.dispute(dispute_id=f"dp_1R{n}", intent_id=f"pi_3Dp{n}", cents=10000, status=outcome),
            ),
        ]

    assert run_concurrently(lambda i: _post(events[i]), len(events)) == [200] * len(events)

    assert list(CreditHold.objects.filter(state="held").values_list("request_id", flat=True)) == []
    balance = selectors.balance_get(user=user)
    assert balance["held"] == 0
    assert balance["balance"] == (0 if outcome == "lost" else 10 * 86_956 * C) == _ledger_sum(user)
    assert set(TopUp.objects.values_list("dispute_status", flat=True)) == {outcome}
    assert services.ledger_reconcile() == []
