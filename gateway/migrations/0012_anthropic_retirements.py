"""Claude Sonnet 4.5 and Claude Opus 4.1 are retired; Claude Opus 4.8 joins the catalog as Opus's successor.

0010 added Sonnet 4.5 and Opus 4.1 as active so that Anthropic's ids for them resolve. Anthropic has
retired both on its own API (read through stored copies of public pages, 2026-12-04):

- Claude Sonnet 4.5 (`claude-sonnet-4-5-20250929`): retirement moved from 2026-05-15 to 2026-05-18;
  the replacement Anthropic names is `claude-sonnet-4-6` (news of the extension, and of the
  retirement, in May 2026).
- Claude Opus 4.1 (`claude-opus-4-1-20250805`): retired 2026-08-05 (migration guides of the Claude 4
  retirement of 2026-06-15, which name Opus 4.1 as the next one); Anthropic's recommended Opus is
  Claude Opus 4.8.
- Claude Opus 4.8 (`claude-opus-4-8`, dateless as every Claude id since 4.6): released 2026-05-28,
  $5 / $25 per 1M tokens (unchanged from Opus 4.7), 1M-token context, 128K output (Anthropic's
  announcement as quoted by several API guides of May-June 2026). Cache prices follow Anthropic's
  multipliers for every current model: read 0.1x, 5-minute write 1.25x, 1-hour write 2x. OpenRouter
  lists it as `anthropic/claude-opus-4.8`.

Both retired models stay in the catalog (usage rows name them) with a successor, so their ids still
resolve: a caller who names one gets the 404 that names the successor, as for every retired model,
unless they list fallbacks. A model the sync has already touched is left as the sync set it.
"""

import datetime
from decimal import Decimal

from django.db import migrations

PER_MILLION = Decimal(1_000_000)
SONNET_45, SONNET_46 = "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.6"
OPUS_41, OPUS_48 = "anthropic/claude-opus-4.1", "anthropic/claude-opus-4.8"

RETIRED = {
    SONNET_45: (datetime.date(2026, 5, 18), SONNET_46),
    OPUS_41: (datetime.date(2026, 8, 5), OPUS_48),
}
# USD per 1M tokens: prompt, completion, cache read, 5-minute write, 1-hour write
OPUS_48_PRICES = ("5", "25", "0.50", "6.25", "10")
OPUS_48_ALIASES = ("claude-opus-4-8",)


def _per_token(per_million):
    return Decimal(per_million) / PER_MILLION


def retire(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    Alias = apps.get_model("gateway", "ModelAlias")
    prompt, completion, read, write, write_1h = (_per_token(p) for p in OPUS_48_PRICES)
    Entry.objects.get_or_create(
        id=OPUS_48,
        defaults={
            "display_name": "Anthropic: Claude Opus 4.8",
            "context_length": 1_000_000,
            "prompt_price": prompt,
            "completion_price": completion,
            "input_cache_read_price": read,
            "input_cache_write_price": write,
            "input_cache_write_1h_price": write_1h,
            "providers": {"openrouter": OPUS_48, "anthropic": "claude-opus-4-8"},
            "zdr": True,
        },
    )
    for alias in OPUS_48_ALIASES:
        Alias.objects.get_or_create(alias=alias, defaults={"model_id": OPUS_48, "source": "seed"})
    for model_id, (shutdown, successor) in RETIRED.items():
        Entry.objects.filter(id=model_id, synced_at__isnull=True).update(
            status="retired", shutdown_date=shutdown, successor_id=successor
        )


def unretire(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    Entry.objects.filter(id__in=list(RETIRED), status="retired").update(
        status="active", shutdown_date=None, successor=None
    )


class Migration(migrations.Migration):
    dependencies = [("gateway", "0011_apikey_staff_ceilings")]

    operations = [migrations.RunPython(retire, unretire)]
