"""Template filters for money and counts on every page: figures read like a bank statement."""

from django import template

from billing.credits import credits_display, credits_usd_display, usd_display

register = template.Library()


@register.filter
def credits(micro) -> str:
    """Micro-credits as "50,131.50" (more decimals only below a cent's worth); blank for None."""
    return credits_display(micro)


@register.filter
def credits_usd(micro) -> str:
    """Micro-credits' worth in dollars at cost: "$50.13"; blank for None."""
    return credits_usd_display(micro)


@register.filter
def usd(amount) -> str:
    """A USD Decimal (a call's cost) as "$0.0000435" / "$12.30"."""
    return usd_display(amount)


@register.filter
def thousands(number) -> str:
    """A count with thousands separators: 50131 -> "50,131"; "–" for None."""
    if number is None or number == "":
        return "–"
    return f"{int(number):,}"


@register.filter
def cents(amount) -> str:
    """Stripe cents as dollars with separators: 777 -> "7.77", 1000000 -> "10,000.00"."""
    if amount is None:
        return ""
    whole, frac = divmod(abs(int(amount)), 100)
    return f"{'-' if int(amount) < 0 else ''}{whole:,}.{frac:02d}"
