"""The form that edits a key's limits (admin and the dashboard's keys page).

Spend caps are typed in credits and stored as micro-credits.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from billing.credits import MICRO_PER_CREDIT, credits_to_micro

from .keys import api_key_cache_drop
from .models import ApiKey, ModelCatalogEntry

PER_MILLION = Decimal(1_000_000)
# Catalog price fields staff edit per 1M tokens (stored per token); empty ones fall back (models.py).
PER_MILLION_PRICES = (
    ("prompt_price", "Prompt", True),
    ("completion_price", "Completion", True),
    ("input_cache_read_price", "Cache read", False),
    ("input_cache_write_price", "Cache write (5 min)", False),
    ("input_cache_write_1h_price", "Cache write (1 hour)", False),
    ("internal_reasoning_price", "Reasoning", False),
)


def _credits(micro: int | None) -> Decimal | None:
    return None if micro is None else Decimal(micro) / MICRO_PER_CREDIT


class ApiKeyCreateForm(forms.Form):
    """A new key's name: free text up to 100 characters (a NUL is refused: PostgreSQL cannot store it)."""

    name = forms.CharField(max_length=100, required=False, strip=True)


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

    # The key's owner edits it (the dashboard): a limit may not pass the staff ceiling on it.
    enforce_ceilings = True
    credit_fields = ("credits_per_day", "credits_per_month")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in self.credit_fields:
                self.initial[f"{name}_credits"] = _credits(getattr(self.instance, name))
        if self.enforce_ceilings:
            for name, field in self._limit_fields():
                ceiling = getattr(self.instance, f"ceiling_{name}")
                if ceiling is not None:
                    # Shown beside the field on the keys page (help texts are not).
                    shown = self._shown(name, ceiling)
                    field.ceiling_note = f"Staff limit: at most {shown}; empty: that limit."

    _LIMITS = ("requests_per_minute", "tokens_per_minute", "credits_per_day", "credits_per_month")

    @staticmethod
    def _form_name(name: str) -> str:
        return f"{name}_credits" if name.endswith(("per_day", "per_month")) else name

    def _shown(self, name: str, value: int) -> str:
        return f"{_credits(value):,} credits" if name.endswith(("per_day", "per_month")) else f"{value:,}"

    def _limit_fields(self):
        for name in self._LIMITS:
            if self._form_name(name) in self.fields:
                yield name, self.fields[self._form_name(name)]

    def clean(self):
        cleaned = super().clean()
        if not self.enforce_ceilings:
            return cleaned
        for name, _field in self._limit_fields():
            ceiling = getattr(self.instance, f"ceiling_{name}")
            value = cleaned.get(self._form_name(name))
            if ceiling is None or value is None:
                continue  # empty: the staff ceiling applies
            own = credits_to_micro(value) if name.endswith(("per_day", "per_month")) else value
            if own > ceiling:
                self.add_error(
                    self._form_name(name),
                    f"Staff set this key's limit to at most {self._shown(name, ceiling)}; "
                    "you can lower it, not raise it.",
                )
        return cleaned

    def save(self, commit: bool = True) -> ApiKey:
        for name in self.credit_fields:
            value = self.cleaned_data.get(f"{name}_credits")
            setattr(self.instance, name, None if value is None else credits_to_micro(value))
        api_key = super().save(commit=commit)
        if commit:
            api_key_cache_drop(api_key=api_key)
        return api_key


def per_million(price: Decimal | None) -> Decimal | None:
    """A USD-per-token price as USD per 1M tokens, without trailing zeros (0.0000025 -> 2.5)."""
    if price is None:
        return None
    value = (Decimal(price) * PER_MILLION).normalize()
    # normalize() writes 10 as 1E+1; a form field shows it as it is written.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _per_million_field(label: str, required: bool) -> forms.DecimalField:
    return forms.DecimalField(
        label=f"{label} (USD / 1M tokens)",
        required=required,
        min_value=0,
        max_digits=24,
        decimal_places=12,
        help_text="USD per 1M tokens." + ("" if required else " Empty: priced as the plain token."),
    )


class CatalogPricesForm(forms.ModelForm):
    """The catalog entry with its token prices typed in USD per 1M tokens, as price lists state
    them, and stored per token (18 decimals) as the pricing reads them."""

    prompt_price_per_m = _per_million_field("Prompt", True)
    completion_price_per_m = _per_million_field("Completion", True)
    input_cache_read_price_per_m = _per_million_field("Cache read", False)
    input_cache_write_price_per_m = _per_million_field("Cache write (5 min)", False)
    input_cache_write_1h_price_per_m = _per_million_field("Cache write (1 hour)", False)
    internal_reasoning_price_per_m = _per_million_field("Reasoning", False)

    class Meta:
        model = ModelCatalogEntry
        # The admin lists its own fields; these are the model fields besides the per-1M prices.
        fields = (
            "id",
            "display_name",
            "context_length",
            "request_price",
            "image_price",
            "providers",
            "zdr",
            "is_active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name, _, _ in PER_MILLION_PRICES:
                self.initial[f"{name}_per_m"] = per_million(getattr(self.instance, name))

    def save(self, commit: bool = True) -> ModelCatalogEntry:
        for name, _, _ in PER_MILLION_PRICES:
            value = self.cleaned_data.get(f"{name}_per_m")
            setattr(self.instance, name, None if value is None else value / PER_MILLION)
        return super().save(commit=commit)
