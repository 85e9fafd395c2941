"""Template filters for money and times on the dashboard pages."""

import datetime as dt

from django import template

from billing.credits import format_credits

register = template.Library()


@register.filter
def credits(micro) -> str:
    """Micro-credits as a credit string ("12.500000"); blank for None."""
    return "" if micro is None else format_credits(int(micro))


@register.filter
def epoch(ts):
    """A UNIX timestamp (as the health store keeps them) as an aware datetime."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC) if ts else None


@register.filter
def percent(rate) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"
