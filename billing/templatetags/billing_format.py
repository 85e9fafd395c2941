"""Template filters for money on every page that shows credits."""

from django import template

from billing.credits import format_credits

register = template.Library()


@register.filter
def credits(micro) -> str:
    """Micro-credits as a credit string ("12.500000"); blank for None."""
    return "" if micro is None else format_credits(int(micro))
