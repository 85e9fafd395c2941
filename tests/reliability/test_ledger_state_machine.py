"""A Hypothesis state machine over the billing services: top-ups, holds, settles, releases, expiries,
refunds, disputes (open, won, lost), staff clearing a shortfall, workers killed mid-call, settles that
hit a database outage (journaled, then replayed by the expiry job) and a server shutdown draining its
calls, in random order. After every step: the balance is the sum of the ledger, never below zero, `held` is the sum of
the open holds, the figures match a model of the money policies, and no hold is resolved twice.

Seeded and replayable: the run prints its seed; `LEDGER_SEED=<n>` replays (or explores) another.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import responses
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction
from django.utils import timezone
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import services, webhooks
from billing.credits import MICRO_PER_CREDIT, topup_cents_to_micro
from billing.models import CreditAccount, CreditHold, LedgerEntry, PendingClawback, TopUp
from gateway import service as gateway_service
from gateway import settle_journal
from gateway.limits import Reservation
from smartspec.errors import InsufficientCredits
from tests.billing import stripe_shapes as shapes

C = MICRO_PER_CREDIT
SEED = int(os.environ.get("LEDGER_SEED", "20261125"))
# Bounded so CI stays fast: about 40 x 40 = 1,600 steps, each followed by the checks.
MAX_EXAMPLES = int(os.environ.get("LEDGER_MAX_EXAMPLES", "40"))
STEPS = 40
_names = itertools.count()


@dataclass
class Payment:
    intent: str
    cents: int
    credits: int
    refunded_cents: int = 0
    clawed: int = 0
    dispute: str = ""  # "" | "open" | "closed"
    frozen: int = 0

    def share(self, cents: int) -> int:
        return self.credits * min(cents, self.cents) // self.cents


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # Each example runs in its own savepoint, rolled back at teardown: every run starts from the
        # same empty ledger, so a failing sequence replays exactly.
        self._example = transaction.atomic()
        self._example.__enter__()
        n = next(_names)
        self.tag = f"m{n}"
        self.user = get_user_model().objects.create_user(username=f"ledger-{n}")
        self.balance = self.held = self.owed = 0
        self.open: dict[int, int] = {}  # hold pk -> amount, for calls still running
        self.abandoned: dict[int, int] = {}  # holds of killed workers, past their expiry
        self.journaled: dict[int, tuple[int, int]] = {}  # hold pk -> (amount, cost): settle hit an outage
        self.resolved: dict[int, tuple] = {}  # hold pk -> (state, charged, excess) when it closed
        self.payments: list[Payment] = []
        self.requests = itertools.count()

    # --- model helpers ------------------------------------------------------
    def _clawback(self, payment: Payment, amount: int) -> None:
        amount = min(amount, payment.credits - payment.clawed)
        if amount <= 0:
            return
        # Never what open holds reserve: calls in flight keep their credits; the rest is owed.
        take = min(amount, max(0, self.balance - self.held))
        payment.clawed += amount
        self.owed += amount - take
        self.balance -= take

    def _collect(self) -> None:
        """What is owed is paid from every credit that becomes available."""
        collect = min(self.owed, max(0, self.balance - self.held))
        self.owed -= collect
        self.balance -= collect

    def _place(self, amount: int) -> CreditHold | None:
        may = self.owed == 0 and self.balance - self.held >= amount
        try:
            hold = services.hold_place(
                user=self.user, amount=amount, request_id=f"{self.tag}-{next(self.requests)}"
            )
        except InsufficientCredits:
            assert not may, "a hold the available credits cover was refused"
            return None
        assert may, "a hold was placed beyond the available credits"
        self.held += amount
        return hold

    def _closed(self, pk: int) -> None:
        hold = CreditHold.objects.get(pk=pk)
        assert hold.state != "held"
        self.resolved[pk] = (hold.state, hold.charged, hold.excess)

    # --- rules --------------------------------------------------------------
    @rule(cents=st.integers(min_value=50, max_value=20_000))
    def top_up(self, cents):
        payment = Payment(
            intent=f"pi_{self.tag}_{len(self.payments)}", cents=cents, credits=topup_cents_to_micro(cents)
        )
        _, credited = services.topup_apply(
            user=self.user, amount_cents=cents, payment_intent_id=payment.intent, source="test"
        )
        assert credited
        # The same payment again (another event type, a replay) credits nothing.
        _, again = services.topup_apply(
            user=self.user, amount_cents=cents, payment_intent_id=payment.intent, source="replay"
        )
        assert not again
        self.payments.append(payment)
        self.balance += payment.credits
        self._collect()

    @rule(credits=st.integers(min_value=0, max_value=60_000), micro=st.integers(min_value=0, max_value=C - 1))
    def hold(self, credits, micro):
        hold = self._place(credits * C + micro)
        if hold is not None:
            self.open[hold.pk] = hold.amount

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(min_value=0), ratio=st.sampled_from([0, 1, 25, 50, 100, 150, 400]))
    def settle(self, pick, ratio):
        pk = sorted(self.open)[pick % len(self.open)]
        amount = self.open.pop(pk)
        cost = amount * ratio // 100
        services.hold_settle(hold_id=pk, amount=cost)
        self.held -= amount
        # Never more than the hold (nor below zero); the rest is flagged, not charged.
        charge = min(cost, amount, max(0, self.balance - self.held))
        self.balance -= charge
        self._collect()
        self._closed(pk)
        state, charged, excess = self.resolved[pk]
        assert (charged, excess) == (charge, cost - charge if cost else 0)
        assert state == ("settled" if cost else "released")

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(min_value=0))
    def release(self, pick):
        pk = sorted(self.open)[pick % len(self.open)]
        self.held -= self.open.pop(pk)
        services.hold_release(hold_id=pk)
        self._collect()
        self._closed(pk)

    @rule(credits=st.integers(min_value=1, max_value=30_000))
    def worker_killed(self, credits):
        """A call placed its hold, then its worker died: nobody will settle it; it is past its expiry."""
        hold = self._place(credits * C)
        if hold is not None:
            CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
            self.abandoned[hold.pk] = hold.amount

    @precondition(lambda self: not self.journaled)
    @rule()
    def expire(self):
        """The billing service alone (no settle journaled): only holds past their expiry go back."""
        # Holds of calls still running are not touched.
        assert services.holds_expire() == len(self.abandoned)
        for pk, amount in self.abandoned.items():
            self.held -= amount
            self._closed(pk)
            assert self.resolved[pk][0] == "expired"
        self.abandoned.clear()
        self._collect()

    @precondition(lambda self: self.open)
    @rule(
        pick=st.integers(min_value=0),
        ratio=st.sampled_from([0, 50, 100, 300]),
        stale=st.booleans(),
    )
    def settle_hits_a_database_outage(self, pick, ratio, stale):
        """The upstream answered, then the database went away: the gateway's settle is journaled and
        the hold stays open (even past its expiry: `stale`), to be charged when the database returns."""
        pk = sorted(self.open)[pick % len(self.open)]
        amount = self.open.pop(pk)
        cost = amount * ratio // 100
        billing = SimpleNamespace(
            user=self.user, api_key_id=None, hold_id=pk, hold_amount=amount, charged=0, uncharged=0,
            reservation=Reservation(),
        )  # fmt: skip
        outcome = SimpleNamespace(
            cost_usd=Decimal(cost) / 10**9, model="openai/gpt-4o", provider="openrouter",
            usage=SimpleNamespace(total_tokens=10),
        )  # fmt: skip
        request_id = CreditHold.objects.get(pk=pk).request_id
        prepared = SimpleNamespace(request_id=request_id)
        down = OperationalError("the database is down")
        with (
            mock.patch.object(gateway_service, "hold_settle", side_effect=down),
            mock.patch.object(gateway_service, "hold_release", side_effect=down),
        ):
            settle = gateway_service._settle(prepared=prepared, billing=billing, outcome=outcome)
        assert settle is not None and billing.charged == min(cost, amount)
        usage = {
            "user_id": self.user.pk, "api_key_id": None, "request_id": request_id, "model": "openai/gpt-4o",
            "provider": "openrouter", "task_type": "simple", "route": "explicit", "prompt_tokens": 1,
            "completion_tokens": 1, "cost_usd": outcome.cost_usd, "credits": billing.charged,
            "hold": amount, "latency_ms": 1, "ttft_ms": None, "attempts": [], "status": "ok",
        }  # fmt: skip
        settle_journal.settle_journal_add(**settle, usage=usage)
        if stale:
            CreditHold.objects.filter(pk=pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert CreditHold.objects.get(pk=pk).state == "held"
        self.journaled[pk] = (amount, cost)

    @rule()
    def expiry_job(self):
        """The database is back: the expiry job replays every journaled settle (each charged what its
        answer said, at most its hold), then expires the abandoned holds, never a journaled one."""
        result = settle_journal.holds_expire_after_replay()
        assert result == {"replayed": len(self.journaled), "expired": len(self.abandoned)}
        for pk, (amount, cost) in sorted(self.journaled.items()):
            self.held -= amount
            charge = min(cost, amount, max(0, self.balance - self.held))
            self.balance -= charge
            self._collect()
            self._closed(pk)
            assert self.resolved[pk][:2] == ("settled" if cost else "released", charge)
        self.journaled.clear()
        for pk, amount in self.abandoned.items():
            self.held -= amount
            self._closed(pk)
            assert self.resolved[pk][0] == "expired"
        self.abandoned.clear()
        self._collect()
        assert settle_journal.settle_journal_pending() == []

    @precondition(lambda self: self.open)
    @rule(ratios=st.lists(st.sampled_from([0, 10, 100]), min_size=1, max_size=8))
    def shutdown(self, ratios):
        """The server is told to stop: every call in flight settles for what it produced (0: nothing,
        released) before it exits; none is left open."""
        for index, pk in enumerate(sorted(self.open)):
            amount = self.open.pop(pk)
            cost = amount * ratios[index % len(ratios)] // 100
            services.hold_settle(hold_id=pk, amount=cost)
            self.held -= amount
            self.balance -= min(cost, amount, max(0, self.balance - self.held))
            self._collect()
            self._closed(pk)
        assert (
            not CreditHold.objects.filter(account__user=self.user, state="held", purpose="usage")
            .exclude(pk__in=[*self.abandoned, *self.journaled])
            .exists()
        )

    @precondition(lambda self: self.resolved)
    @rule(pick=st.integers(min_value=0), amount=st.integers(min_value=0, max_value=10_000 * C))
    def late_settle_or_release(self, pick, amount):
        """A settle or release arriving for a hold already closed (retried, or from a revived worker)."""
        pk = sorted(self.resolved)[pick % len(self.resolved)]
        assert services.hold_settle(hold_id=pk, amount=amount) is None
        services.hold_release(hold_id=pk)

    @precondition(lambda self: self.payments)
    @rule(pick=st.integers(min_value=0), more=st.integers(min_value=0, max_value=20_000))
    def refund(self, pick, more):
        payment = self.payments[pick % len(self.payments)]
        cumulative = min(payment.cents, payment.refunded_cents + more)
        services.topup_refund_apply(
            payment_intent_id=payment.intent,
            charge_id=f"ch_{payment.intent}",
            amount_refunded_cents=cumulative,
        )
        self._model_refund(payment, cumulative)

    def _model_refund(self, payment: Payment, cumulative: int) -> None:
        cumulative = min(payment.cents, cumulative)
        if cumulative <= payment.refunded_cents:
            return
        delta = payment.share(cumulative) - payment.share(payment.refunded_cents)
        payment.refunded_cents = cumulative
        if payment.dispute == "open":
            # An open dispute of the same payment gives back what the refund takes.
            thaw = min(payment.frozen, delta)
            payment.frozen -= thaw
            self.held -= thaw
        self._clawback(payment, delta)

    @precondition(lambda self: any(not p.dispute for p in self.payments))
    @rule(pick=st.integers(min_value=0))
    def dispute_open(self, pick):
        candidates = [p for p in self.payments if not p.dispute]
        payment = candidates[pick % len(candidates)]
        services.dispute_open(
            payment_intent_id=payment.intent, dispute_id=f"dp_{payment.intent}", amount_cents=payment.cents
        )
        self._model_dispute_open(payment)

    def _model_dispute_open(self, payment: Payment) -> None:
        if payment.dispute:
            return  # a late `created` after the close freezes nothing
        wanted = min(payment.share(payment.cents), payment.credits - payment.clawed)
        payment.frozen = max(0, min(wanted, self.balance - self.held))
        payment.dispute = "open"
        self.held += payment.frozen

    @precondition(lambda self: any(p.dispute == "open" for p in self.payments))
    @rule(pick=st.integers(min_value=0), outcome=st.sampled_from(["won", "lost"]))
    def dispute_close(self, pick, outcome):
        candidates = [p for p in self.payments if p.dispute == "open"]
        payment = candidates[pick % len(candidates)]
        self._dispute_close(payment, outcome)

    def _dispute_close(self, payment: Payment, outcome: str) -> None:
        services.dispute_close(
            payment_intent_id=payment.intent,
            dispute_id=f"dp_{payment.intent}",
            status=outcome,
            amount_cents=payment.cents,
        )
        self._model_dispute_close(payment, outcome)
        # A replay of the closing event changes nothing.
        services.dispute_close(
            payment_intent_id=payment.intent,
            dispute_id=f"dp_{payment.intent}",
            status=outcome,
            amount_cents=payment.cents,
        )

    def _model_dispute_close(self, payment: Payment, outcome: str) -> None:
        if payment.dispute == "closed":
            return
        self.held -= payment.frozen
        payment.frozen = 0
        payment.dispute = "closed"
        if outcome == "lost":
            self._clawback(payment, payment.share(payment.cents))
        self._collect()

    @rule(
        cents=st.integers(min_value=50, max_value=20_000),
        refunds=st.lists(st.integers(min_value=1, max_value=100), max_size=2),
        dispute=st.sampled_from(["", "open", "won", "lost", "lost_unopened"]),
        split=st.booleans(),
        data=st.data(),
    )
    def payment_events_in_any_order(self, cents, refunds, dispute, split, data):
        """One payment's webhooks in a random order: refunds and disputes may come before the payment,
        and the payment may come as a checkout without its PaymentIntent (tied through Stripe's API)
        plus `payment_intent.succeeded`. The model applies them in the natural order: payment first."""
        payment = Payment(
            intent=f"pi_{self.tag}_{len(self.payments)}", cents=cents, credits=topup_cents_to_micro(cents)
        )
        session = f"cs_{payment.intent[3:]}"
        uid = self.user.pk
        if split:
            paid = [
                shapes.event(
                    "checkout.session.completed",
                    shapes.checkout_session(
                        user_id=uid, cents=cents, session_id=session, payment_intent=None
                    ),
                ),
                shapes.event(
                    "payment_intent.succeeded",
                    shapes.payment_intent(intent_id=payment.intent, cents=cents, user_id=uid),
                ),
            ]
        else:
            paid = [
                shapes.event(
                    "checkout.session.completed",
                    shapes.checkout_session(
                        user_id=uid, cents=cents, session_id=session, payment_intent=payment.intent
                    ),
                )
            ]
        natural: list[tuple[str, int | str]] = []
        cumulative = 0
        for percent in refunds:
            cumulative = max(cumulative, cents * percent // 100)
            natural.append(("refund", cumulative))
        if dispute in ("open", "won", "lost"):
            natural.append(("open", ""))
        if dispute in ("won", "lost", "lost_unopened"):
            natural.append(("close", "lost" if dispute != "won" else "won"))
        clawbacks = []
        dp = f"dp_{payment.intent}"
        for kind, arg in natural:
            if kind == "refund":
                obj = shapes.charge(intent_id=payment.intent, cents=cents, refunded_cents=arg)
                clawbacks.append(shapes.event("charge.refunded", obj))
            elif kind == "open":
                obj = shapes.dispute(dispute_id=dp, intent_id=payment.intent, cents=cents)
                clawbacks.append(shapes.event("charge.dispute.created", obj))
            else:
                obj = shapes.dispute(dispute_id=dp, intent_id=payment.intent, cents=cents, status=arg)
                clawbacks.append(shapes.event("charge.dispute.closed", obj))
        events = paid + clawbacks
        for index in data.draw(st.permutations(range(len(events))), label="delivery order"):
            assert webhooks.stripe_event_process(event=events[index]) != "failed"
        assert not PendingClawback.objects.filter(payment_intent_id=payment.intent, applied_at=None).exists()

        self.payments.append(payment)
        self.balance += payment.credits
        self._collect()
        for kind, arg in natural:
            if kind == "refund":
                self._model_refund(payment, arg)
            elif kind == "open":
                self._model_dispute_open(payment)
            else:
                self._model_dispute_close(payment, arg)

    @precondition(lambda self: self.owed)
    @rule()
    def staff_clear_shortfall(self):
        services.account_shortfall_clear(user=self.user, actor=None, reason="written off")
        self.owed = 0

    # --- checks after every step --------------------------------------------------
    @invariant()
    def money_is_conserved(self):
        account = CreditAccount.objects.filter(user=self.user).first()
        figures = (account.balance, account.held, account.owed) if account else (0, 0, 0)
        assert figures == (self.balance, self.held, self.owed)
        assert self.balance >= 0 and self.held >= 0 and self.owed >= 0
        # A clawback never takes what calls in flight hold; owing while credits sit available would
        # mean a collection was missed.
        assert self.balance >= self.held
        assert self.owed == 0 or self.balance == self.held

    @invariant()
    def each_payment_credited_once_and_clawed_back_as_in_the_natural_order(self):
        if not self.payments:
            return
        topups = {t.payment_intent_id: t for t in TopUp.objects.filter(account__user=self.user)}
        assert len(topups) == len(self.payments)
        credited = LedgerEntry.objects.filter(account__user=self.user, kind="topup")
        assert credited.count() == len(self.payments)
        for payment in self.payments:
            topup = topups[payment.intent]
            assert (topup.credits, topup.clawed_back) == (payment.credits, payment.clawed)
            assert topup.amount_refunded_cents == payment.refunded_cents
        # balance == sum(entries) and held == sum(open holds), for every account.
        assert services.ledger_reconcile() == []

    @invariant()
    def holds_resolve_at_most_once(self):
        if not self.resolved:
            return
        now = {
            h.pk: (h.state, h.charged, h.excess)
            for h in CreditHold.objects.filter(pk__in=list(self.resolved))
        }
        assert now == self.resolved

    def teardown(self):
        # Journaled settles of holds this example rolls back go with them.
        for path in Path(django_settings.SETTLE_JOURNAL_DIR).glob("*.json"):
            path.unlink()
        transaction.set_rollback(True)
        self._example.__exit__(None, None, None)


def _stripe_session(request):
    """Stripe's Checkout Session, as `checkout.sessions.retrieve` returns it: cs_X pays pi_X."""
    session_id = request.url.rsplit("/", 1)[-1].split("?")[0]
    body = {"id": session_id, "object": "checkout.session", "payment_intent": f"pi_{session_id[3:]}"}
    return 200, {"content-type": "application/json"}, json.dumps(body)


@pytest.mark.django_db
def test_ledger_state_machine(monkeypatch, tmp_path):
    # Replays run from the expiry job step, in this test's transaction, not from a background thread.
    monkeypatch.setattr(settle_journal, "replayer_start", lambda: None)
    monkeypatch.setattr(django_settings, "SETTLE_JOURNAL_DIR", str(tmp_path / "journal"))
    # Checkouts without a PaymentIntent are tied to it through Stripe's API (mocked below).
    monkeypatch.setattr(django_settings, "STRIPE_SECRET_KEY", "sk_test_ledger_machine")
    print(
        f"\nledger state machine: seed {SEED}, {MAX_EXAMPLES} examples x {STEPS} steps (LEDGER_SEED replays)"
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stripe_api:
        stripe_api.add_callback(
            responses.GET,
            re.compile(r"https://api\.stripe\.com/v1/checkout/sessions/cs_\w+"),
            _stripe_session,
        )
        _run()


def _run():
    run_state_machine_as_test(
        seed(SEED)(LedgerMachine),
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
