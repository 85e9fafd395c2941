"""The credit math: exact integers, the top-up markup, rounding that never undercharges."""

from decimal import Decimal

import pytest

from billing.credits import (
    MICRO_PER_CREDIT,
    TOPUP_MIN_CENTS,
    credits_to_micro,
    format_credits,
    format_usd,
    micro_per_usd,
    topup_cents_to_micro,
    usd_to_cents,
    usd_to_micro,
)


def test_units():
    assert MICRO_PER_CREDIT == 1_000_000
    assert micro_per_usd() == 1_000_000_000


@pytest.mark.parametrize(
    ("cents", "credits"),
    [(10000, 86_956), (777, 6_756), (50, 434), (115, 1_000), (1, 8), (0, 0), (1_000_000, 8_695_652)],
)
def test_topup_markup(cents, credits):
    assert topup_cents_to_micro(cents) == credits * MICRO_PER_CREDIT


def test_topup_100_usd_is_86956_credits_as_string():
    assert format_credits(topup_cents_to_micro(10000)) == "86956.000000"
    assert format_usd(topup_cents_to_micro(10000)) == "86.956000"


def test_topup_minimum_is_50_cents():
    assert TOPUP_MIN_CENTS == 50
    assert usd_to_cents("0.50") == TOPUP_MIN_CENTS


@pytest.mark.parametrize("bad", [-1, True, "100"])
def test_topup_rejects_non_integer_or_negative_cents(bad):
    with pytest.raises(ValueError):
        topup_cents_to_micro(bad)


def test_usage_cost_is_exact():
    assert usd_to_micro("0.000123") == 123_000
    assert format_credits(usd_to_micro(Decimal("0.000123"))) == "0.123000"
    assert usd_to_micro(1) == micro_per_usd()
    assert usd_to_micro(0) == 0


def test_json_number_goes_through_its_string():
    # A value parsed by json.loads as a binary number still converts as written.
    import json

    parsed = json.loads('{"cost": 0.000123}')["cost"]
    assert usd_to_micro(parsed) == 123_000


def test_usage_rounds_up_to_a_whole_micro_credit():
    assert usd_to_micro("0.0000000001") == 1
    assert usd_to_micro("0.0000000011") == 2


@pytest.mark.parametrize("bad", ["-0.01", "NaN", "Infinity", "-Infinity", "abc", "", True])
def test_usd_to_micro_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        usd_to_micro(bad)


def test_credits_to_micro():
    assert credits_to_micro("1.5") == 1_500_000
    assert credits_to_micro(-2) == -2_000_000
    assert credits_to_micro("0.000001") == 1
    with pytest.raises(ValueError):
        credits_to_micro("0.0000001")
    with pytest.raises(ValueError):
        credits_to_micro("NaN")


def test_usd_to_cents():
    assert usd_to_cents("7.77") == 777
    assert usd_to_cents(100) == 10000
    with pytest.raises(ValueError):
        usd_to_cents("1.005")


def test_formatting():
    assert format_credits(0) == "0.000000"
    assert format_credits(1) == "0.000001"
    assert format_credits(-1_500_000) == "-1.500000"
    assert format_usd(123_000) == "0.000123"
    assert format_usd(0) == "0.000000"


def test_rate_and_markup_are_settings(settings):
    """An operator changes the rate and the markup without code; the math follows exactly."""
    settings.CREDITS_PER_USD = 2_000
    settings.TOPUP_MARKUP_PERCENT = "12.5"
    # $100 / 1.125 x 2000 = 177,777.7 -> 177,777 whole credits; usage at 2,000 credits per USD.
    assert topup_cents_to_micro(10_000) == 177_777 * MICRO_PER_CREDIT
    assert usd_to_micro("0.000125") == 250_000
    settings.TOPUP_MARKUP_PERCENT = 0
    assert topup_cents_to_micro(10_000) == 200_000 * MICRO_PER_CREDIT


@pytest.mark.django_db
def test_topup_page_states_the_configured_rate(client, user, settings):
    settings.CREDITS_PER_USD = 2_000
    settings.TOPUP_MARKUP_PERCENT = "25"
    client.force_login(user)
    html = client.get("/topup/").content.decode()
    # $100 / 1.25 x 2000 = 160,000 credits.
    assert (
        "1 USD of usage costs 2,000 credits; top-ups carry a 25% fee, so $100.00 buys 160,000 credits" in html
    )
    assert 'data-credits-per-usd="2000" data-markup-percent="25"' in html


@pytest.mark.django_db
def test_a_topups_receipt_keeps_the_rate_it_was_credited_at(client, user, settings):
    from billing.services import topup_apply

    topup, _ = topup_apply(
        user=user,
        amount_cents=10_000,
        payment_intent_id="pi_rate",
        checkout_session_id="cs_rate",
        source="test",
    )
    assert (topup.credits_per_usd, topup.markup_percent, topup.credits) == (
        1000,
        15,
        86_956 * MICRO_PER_CREDIT,
    )
    settings.TOPUP_MARKUP_PERCENT = "20"  # the operator changes the markup afterwards
    client.force_login(user)
    html = client.get("/topup/success/", {"session_id": "cs_rate"}).content.decode()
    assert 'data-testid="topup-credits">86,956.00<' in html
    assert "At 1,000 credits per USD with a 15% top-up fee: floor($100.00 / 1.15 × 1,000)" in html
    # New top-ups are offered at the new markup: $100 / 1.20 x 1000.
    assert "so $100.00 buys 83,333 credits" in client.get("/topup/").content.decode()
