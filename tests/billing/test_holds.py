"""Holds: placed atomically against available credits, settled at real cost, released, expired."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditAccount, CreditHold, LedgerEntry
from smartspec.errors import Conflict, InsufficientCredits
from tests.billing.conftest import run_concurrently

C = MICRO_PER_CREDIT
pytestmark = pytest.mark.django_db


def test_place_reserves_and_settle_charges_the_real_cost(user, fund):
    fund(user, 100)
    hold = services.hold_place(user=user, amount=30 * C, request_id="req-1")
    assert selectors.balance_get(user=user) == {"balance": 100 * C, "held": 30 * C, "available": 70 * C}

    entry = services.hold_settle(hold_id=hold.pk, amount=12 * C, description="openai/gpt-4o")

    assert entry.kind == "usage"
    assert entry.amount == -12 * C
    assert entry.balance_after == 88 * C
    assert entry.reference == "req-1"
    assert selectors.balance_get(user=user) == {"balance": 88 * C, "held": 0, "available": 88 * C}
    hold.refresh_from_db()
    assert (hold.state, hold.charged, hold.excess) == ("settled", 12 * C, 0)


def test_settle_twice_charges_once(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=5 * C, request_id="req-1")
    assert services.hold_settle(hold_id=hold.pk, amount=2 * C) is not None
    assert services.hold_settle(hold_id=hold.pk, amount=2 * C) is None
    assert selectors.balance_get(user=user)["balance"] == 8 * C
    assert LedgerEntry.objects.filter(kind="usage").count() == 1


def test_settle_zero_releases_without_entry(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=5 * C, request_id="req-1")
    assert services.hold_settle(hold_id=hold.pk, amount=0) is None
    hold.refresh_from_db()
    assert hold.state == "released"
    assert not LedgerEntry.objects.filter(kind="usage").exists()
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}


@pytest.mark.parametrize("path", ["statement", "orm"])
def test_settle_above_hold_charges_exactly_the_hold_and_flags_the_rest(user, fund, path):
    """DESIGN: a customer is never charged more than the call's hold, even with credits available."""
    fund(user, 10)
    other = services.hold_place(user=user, amount=4 * C, request_id="req-other")
    hold = services.hold_place(user=user, amount=3 * C, request_id="req-1")

    if path == "orm":
        entry = services._hold_settle_orm(hold_id=hold.pk, amount=9 * C, description="", reference="")
    else:
        entry = services.hold_settle(hold_id=hold.pk, amount=9 * C)

    # The hold (3) is all that is charged, though 3 more were available: 6 flagged as excess.
    assert entry.amount == -3 * C
    hold.refresh_from_db()
    assert (hold.state, hold.charged, hold.excess) == ("settled", 3 * C, 6 * C)
    assert selectors.balance_get(user=user) == {"balance": 7 * C, "held": 4 * C, "available": 3 * C}
    services.hold_release(hold_id=other.pk)


@pytest.mark.parametrize("path", ["statement", "orm"])
def test_settle_absurd_usage_on_a_tiny_hold_takes_the_hold_not_the_balance(user, fund, path):
    fund(user, 50)
    hold = services.hold_place(user=user, amount=250_000, request_id="req-absurd")  # 0.25 credits

    absurd = 10_000 * C
    if path == "orm":
        services._hold_settle_orm(hold_id=hold.pk, amount=absurd, description="", reference="")
    else:
        services.hold_settle(hold_id=hold.pk, amount=absurd)

    hold.refresh_from_db()
    assert (hold.charged, hold.excess) == (250_000, absurd - 250_000)
    assert selectors.balance_get(user=user)["balance"] == 50 * C - 250_000


def test_hold_refused_when_available_does_not_cover(user, fund):
    fund(user, 10)
    services.hold_place(user=user, amount=8 * C, request_id="req-1")
    with pytest.raises(InsufficientCredits) as exc:
        services.hold_place(user=user, amount=3 * C, request_id="req-2")
    assert exc.value.status == 402
    assert CreditHold.objects.count() == 1
    assert selectors.balance_get(user=user)["held"] == 8 * C
    services.hold_release(hold_id=CreditHold.objects.get().pk)


def test_hold_for_user_without_account_is_refused(user):
    with pytest.raises(InsufficientCredits):
        services.hold_place(user=user, amount=1, request_id="req-1")
    assert CreditAccount.objects.get(user=user).held == 0


def test_duplicate_request_id_is_a_conflict_and_reserves_nothing(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=2 * C, request_id="req-1")
    with pytest.raises(Conflict) as exc:
        services.hold_place(user=user, amount=2 * C, request_id="req-1")
    assert exc.value.code == "duplicate_request_id"
    assert "'req-1'" in exc.value.message and "in progress" in exc.value.message
    assert selectors.balance_get(user=user)["held"] == 2 * C
    services.hold_release(hold_id=hold.pk)
    # Once that call is over, reusing its id is still refused, with a message saying so.
    with pytest.raises(Conflict) as exc:
        services.hold_place(user=user, amount=2 * C, request_id="req-1")
    assert "earlier call" in exc.value.message
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}


def test_request_ids_are_per_caller_another_account_may_reuse_one(user, other_user, fund):
    fund(user, 10)
    fund(other_user, 10)
    mine = services.hold_place(user=user, amount=2 * C, request_id="shared-id")
    theirs = services.hold_place(user=other_user, amount=3 * C, request_id="shared-id")

    # Both settle under the same reference: each account's ledger has its own usage entry.
    services.hold_settle(hold_id=mine.pk, amount=C, reference="shared-id")
    services.hold_settle(hold_id=theirs.pk, amount=2 * C, reference="shared-id")

    assert selectors.balance_get(user=user)["balance"] == 9 * C
    assert selectors.balance_get(user=other_user)["balance"] == 8 * C
    entries = LedgerEntry.objects.filter(kind="usage", reference="shared-id")
    assert sorted(e.amount for e in entries) == [-2 * C, -C]


def test_release_is_idempotent(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=2 * C, request_id="req-1")
    services.hold_release(hold_id=hold.pk)
    services.hold_release(hold_id=hold.pk)
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}
    # A settle arriving after the release charges nothing.
    assert services.hold_settle(hold_id=hold.pk, amount=C) is None
    assert selectors.balance_get(user=user)["balance"] == 10 * C


def test_expire_stale_holds(user, fund):
    fund(user, 10)
    stale = services.hold_place(user=user, amount=2 * C, request_id="req-stale", ttl_seconds=60)
    fresh = services.hold_place(user=user, amount=3 * C, request_id="req-fresh", ttl_seconds=3600)

    assert services.holds_expire(now=timezone.now() + timedelta(seconds=120)) == 1

    stale.refresh_from_db()
    assert stale.state == "expired"
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 3 * C, "available": 7 * C}
    expiry = LedgerEntry.objects.get(kind="hold_expiry")
    assert (expiry.amount, expiry.reference) == (0, "req-stale")
    # The late settle from the crashed worker never charges.
    assert services.hold_settle(hold_id=stale.pk, amount=C) is None
    assert services.holds_expire(now=timezone.now() + timedelta(seconds=120)) == 0
    services.hold_release(hold_id=fresh.pk)


def test_negative_amounts_are_refused(user, fund):
    fund(user, 10)
    with pytest.raises(ValueError):
        services.hold_place(user=user, amount=-1, request_id="req-1")
    hold = services.hold_place(user=user, amount=C, request_id="req-2")
    with pytest.raises(ValueError):
        services.hold_settle(hold_id=hold.pk, amount=-5)
    services.hold_release(hold_id=hold.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_50_concurrent_holds_against_a_balance_for_10(user, fund):
    fund(user, 100)

    def place(i):
        return services.hold_place(user=user, amount=10 * C, request_id=f"req-{i}")

    results = run_concurrently(place, 50)

    placed = [r for r in results if isinstance(r, CreditHold)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(placed), len(refused)) == (10, 40)
    assert selectors.balance_get(user=user) == {"balance": 100 * C, "held": 100 * C, "available": 0}

    run_concurrently(lambda i: services.hold_settle(hold_id=placed[i].pk, amount=10 * C), 10)
    assert selectors.balance_get(user=user) == {"balance": 0, "held": 0, "available": 0}
    assert LedgerEntry.objects.filter(kind="usage").count() == 10


def test_hot_path_query_counts(user, fund, django_assert_max_num_queries):
    fund(user, 10)
    # The hot path has the account id cached; a stale id (a cache shared with earlier runs whose
    # database had other ids) costs a lookup and a retry, which is correct but not what is counted.
    services.hold_release(hold_id=services.hold_place(user=user, amount=C, request_id="req-warm").pk)
    with django_assert_max_num_queries(7):
        hold = services.hold_place(user=user, amount=C, request_id="req-q")
    with django_assert_max_num_queries(7):
        services.hold_settle(hold_id=hold.pk, amount=C // 2)
    with django_assert_max_num_queries(1):
        selectors.balance_get(user=user)


def _synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("async_commit", [True, False])
def test_a_lone_hold_skips_only_its_own_wal_wait(user, fund, settings, async_commit):
    """Outside a transaction the hold's statement turns synchronous_commit off for its own implicit
    transaction (set_config(..., true) inside the statement: one round trip, preparable); the
    session, a caller's transaction and the settle keep durable commits."""
    from django.db import connection, transaction

    settings.HOLD_ASYNC_COMMIT = async_commit
    fund(user, 10)
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        hold = services.hold_place(user=user, amount=3 * C, request_id="lone")
    # (A stale cached account id from another test adds a lookup and a retry: only the hold is asserted.)
    placing = [sql for sql in sent if "INSERT INTO billing_credithold" in sql]
    assert placing and all(
        ("set_config('synchronous_commit', 'off', true)" in sql) is async_commit for sql in placing
    )
    assert _synchronous_commit() == "on"
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 3 * C, "available": 7 * C}
    assert CreditHold.objects.get(pk=hold.pk).request_id == "lone"

    sent.clear()
    with transaction.atomic(), connection.execute_wrapper(record):
        inner = services.hold_place(user=user, amount=2 * C, request_id="in-a-transaction")
        assert _synchronous_commit() == "on"
    assert not any("set_config" in sql for sql in sent)

    services.hold_settle(hold_id=hold.pk, amount=C)
    services.hold_release(hold_id=inner.pk)
    assert selectors.balance_get(user=user) == {"balance": 9 * C, "held": 0, "available": 9 * C}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_lone_holds_statement_turns_the_wal_wait_off_for_its_transaction_only(user, fund):
    """The setting inside the hold's statement is made when the hold is placed (a refused hold writes
    nothing, so it has no flush to wait for), and lasts only as long as the statement's transaction."""
    from django.db import connection, transaction

    fund(user, 1)
    account_id = CreditAccount.objects.get(user=user).pk
    now = timezone.now()
    settings_seen = {}
    for amount in (C // 2, 100 * C):  # placed, and refused for want of credits
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    services._HOLD_PLACE_ASYNC_SQL,
                    {
                        "amount": amount,
                        "now": now,
                        "account_id": account_id,
                        "user_id": user.pk,
                        "request_id": f"async-{amount}",
                        "expires_at": now,
                    },
                )
                placed = cursor.fetchone()
            settings_seen[amount] = (placed is not None, _synchronous_commit())
        assert _synchronous_commit() == "on"
    assert settings_seen == {C // 2: (True, "off"), 100 * C: (False, "on")}
    services.hold_release(hold_id=CreditHold.objects.get(request_id=f"async-{C // 2}").pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reused_request_id_leaves_no_prepared_statements_behind(user, fund):
    """The hot statements are prepared once per connection; a hold refused for a reused request id
    (it fails after its statement was prepared) must not leave a new one on the server each time."""
    from django.db import connection

    fund(user, 10)
    services.hold_place(user=user, amount=C, request_id="reused")

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            return cursor.fetchone()[0]

    counts = []
    for _ in range(5):
        # A small amount travels as another integer type: a statement this connection has not
        # prepared yet, so each refused hold prepares it first (the case that leaked).
        with pytest.raises(Conflict):
            services.hold_place(user=user, amount=7, request_id="reused")
        counts.append(prepared())
    assert max(counts) <= 2, counts
    # And the hold's statement still runs (prepared again) after the clean-up.
    fresh = services.hold_place(user=user, amount=C, request_id="fresh")
    assert fresh.amount == C
    for hold in CreditHold.objects.filter(state=CreditHold.State.HELD):
        services.hold_release(hold_id=hold.pk)
