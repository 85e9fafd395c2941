"""The form that edits a key's limits (admin and the dashboard's keys page).

Spend caps are typed in credits and stored as micro-credits.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from billing.credits import MICRO_PER_CREDIT, credits_to_micro

from .keys import api_key_cache_drop
from .models import ApiKey


def _credits(micro: int | None) -> Decimal | None:
    return None if micro is None else Decimal(micro) / MICRO_PER_CREDIT


class ApiKeyLimitsForm(forms.ModelForm):
    credits_per_day_credits = forms.DecimalField(
        label="Credits per day",
        required=False,
        min_value=0,
        max_digits=18,
        decimal_places=6,
        help_text="Spend cap per UTC day, in credits; empty: no cap.",
    )
    credits_per_month_credits = forms.DecimalField(
        label="Credits per month",
        required=False,
        min_value=0,
        max_digits=18,
        decimal_places=6,
        help_text="Spend cap per UTC calendar month, in credits; empty: no cap.",
    )

    class Meta:
        model = ApiKey
        fields = ("requests_per_minute", "tokens_per_minute")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["credits_per_day_credits"] = _credits(self.instance.credits_per_day)
            self.initial["credits_per_month_credits"] = _credits(self.instance.credits_per_month)

    def save(self, commit: bool = True) -> ApiKey:
        for name in ("credits_per_day", "credits_per_month"):
            value = self.cleaned_data.get(f"{name}_credits")
            setattr(self.instance, name, None if value is None else credits_to_micro(value))
        api_key = super().save(commit=commit)
        if commit:
            api_key_cache_drop(api_key=api_key)
        return api_key
