"""Template filters for the health and usage pages' times and rates."""

import datetime as dt

from django import template

register = template.Library()


@register.filter
def epoch(ts):
    """A UNIX timestamp (as the health store keeps them) as an aware datetime."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC) if ts else None


@register.filter
def percent(rate) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"
