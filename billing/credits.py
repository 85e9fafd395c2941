"""The one place that converts money: USD, Stripe cents and credits.

Everything is an integer in minor units. 1 credit = 1,000,000 micro-credits;
1 USD = `CREDITS_PER_USD` credits (1,000 by default, so 1,000,000,000 micro-credits). Usage is
charged at cost; top-ups carry `TOPUP_MARKUP_PERCENT` (15 by default). Both are settings, so an
operator changes them without code. Decimal appears only while parsing a USD figure.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction

from django.conf import settings

MICRO_PER_CREDIT = 1_000_000


def credits_per_usd() -> int:
    """How many credits 1 USD of usage costs (`CREDITS_PER_USD`)."""
    return int(settings.CREDITS_PER_USD)


def micro_per_usd() -> int:
    return MICRO_PER_CREDIT * credits_per_usd()


def topup_markup_percent() -> Decimal:
    """The top-up markup in percent (`TOPUP_MARKUP_PERCENT`), e.g. Decimal("15")."""
    return Decimal(str(settings.TOPUP_MARKUP_PERCENT))


# Stripe refuses USD charges under $0.50; the cap limits what one mistaken click can cost.
TOPUP_MIN_CENTS = 50
TOPUP_MAX_CENTS = 1_000_000


def _to_decimal(value: Decimal | str | int, *, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    else:
        # Through the string: an upstream's JSON number converts exactly as it was written.
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {value!r}")
    if not number.is_finite():
        raise ValueError(f"{what} must be finite: {value!r}")
    return number


def usd_to_micro(usd: Decimal | str | int) -> int:
    """A USD cost as micro-credits at cost, rounded up so usage is never undercharged."""
    number = _to_decimal(usd, what="USD amount")
    if number < 0:
        raise ValueError(f"USD amount must not be negative: {usd!r}")
    return int((number * micro_per_usd()).to_integral_value(rounding=ROUND_CEILING))


def topup_cents_to_micro(
    cents: int, *, rate: int | None = None, markup_percent: Decimal | str | int | None = None
) -> int:
    """Credits bought by a payment: floor(usd / (1 + markup) * credits per USD) whole credits, in
    micro-credits; with the defaults floor(usd / 1.15 * 1000), so $100 buys 86,956. `rate` and
    `markup_percent` default to the settings (a top-up's receipt passes the ones it was credited at)."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise ValueError(f"cents must be an integer: {cents!r}")
    if cents < 0:
        raise ValueError(f"cents must not be negative: {cents!r}")
    # cents / 100 / (1 + m / 100) * rate == cents * rate / (100 + m), kept exact (a Fraction).
    rate = credits_per_usd() if rate is None else rate
    markup = topup_markup_percent() if markup_percent is None else markup_percent
    credits = Fraction(cents * rate) / (100 + Fraction(str(markup)))
    return (credits.numerator // credits.denominator) * MICRO_PER_CREDIT


def credits_to_micro(credits: Decimal | str | int) -> int:
    """A credit amount (may be negative, e.g. a staff debit) as micro-credits; must be exact."""
    number = _to_decimal(credits, what="credit amount")
    micro = number * MICRO_PER_CREDIT
    if micro != micro.to_integral_value():
        raise ValueError(f"credit amount has more than 6 decimal places: {credits!r}")
    return int(micro)


def usd_to_cents(usd: Decimal | str | int) -> int:
    """A payment amount in USD as Stripe cents; must be a whole number of cents."""
    number = _to_decimal(usd, what="USD amount")
    cents = number * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"USD amount has more than 2 decimal places: {usd!r}")
    return int(cents)


def format_credits(micro: int) -> str:
    """Micro-credits as a decimal credit string: 86956000000 -> "86956.000000"."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO_PER_CREDIT)
    return f"{sign}{whole}.{frac:06d}"


def format_usd(micro: int) -> str:
    """Micro-credits as their USD value with 6 decimals: 86956000000 -> "86.956000"."""
    usd = (Decimal(micro) / micro_per_usd()).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    return f"{usd:f}"


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


# --- Display (pages and admin; the JSON APIs keep the exact strings above) --------------------

# A cent's worth of credits: figures this large read to two decimals, smaller ones keep the digits
# that make them non-zero (a call's 0.0435 credits must not show as 0.04 or 0.00).
DISPLAY_FULL_BELOW = 10 * MICRO_PER_CREDIT


def _grouped(number: Decimal, places: int) -> str:
    return f"{number:,.{places}f}"


def credits_display(micro: int | None) -> str:
    """Micro-credits as a statement shows them: "50,131.50", "-2.00", "0.0435"; "" for None.

    Two decimals with thousands separators; below a cent's worth (10 credits) up to all six
    decimals, trailing zeros dropped (never fewer than two)."""
    if micro is None:
        return ""
    micro = int(micro)
    credits = Decimal(micro) / MICRO_PER_CREDIT
    if micro == 0 or abs(micro) >= DISPLAY_FULL_BELOW:
        return _grouped(credits.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN), 2)
    text = f"{credits:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def usd_display(usd: Decimal | int | str | None) -> str:
    """A USD amount as "$1,234.56"; below a cent with the digits that make it non-zero
    ("$0.0000435"); "" for None."""
    if usd is None:
        return ""
    number = _to_decimal(usd, what="USD amount")
    sign = "-" if number < 0 else ""
    number = abs(number)
    if number == 0 or number >= Decimal("0.01"):
        return f"{sign}${_grouped(number.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN), 2)}"
    text = f"{number.quantize(Decimal('0.000000001'), rounding=ROUND_HALF_EVEN):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def credits_usd_display(micro: int | None) -> str:
    """What micro-credits are worth at cost, as usd_display shows it."""
    if micro is None:
        return ""
    return usd_display(Decimal(int(micro)) / micro_per_usd())
