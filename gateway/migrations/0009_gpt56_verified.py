"""Complete the GPT-5.6 defaults that 0008 seeded from inferred ids, now checked against sources.

0008 named `openai/gpt-5.6-terra` and `openai/gpt-5.6-luna` after OpenRouter's `openai/<name>`
convention without having seen them listed. Checked since (stored copies of public pages and code,
read 2026-12-04):

- The ids. Public projects call both ids on `https://openrouter.ai/api/v1` (OpenRouter clients and
  configs, one of them with an OpenRouter `/models` entry for `openai/gpt-5.6-luna`), and OpenAI's
  own ids are `gpt-5.6-terra` / `gpt-5.6-luna` (OpenAI's Help Center preview of GPT-5.6, as quoted by
  several pricing write-ups of 2026-06-27). Those OpenRouter entries give both models a context of
  1,050,000 tokens, which 0008 had left at 0 for the sync to fill.
- The prices. OpenAI's list prices per 1M tokens: Terra $2.50 input / $15 output, Luna $1 / $6
  (0008's figures), cached input at a 90% discount ($0.25 / $0.10), and cache writes at 1.25x input
  ($3.125 / $1.25), new with GPT-5.6 (30-minute minimum cache life). 0008 had no cache price for
  Terra and no cache-write price for either, so a warm Terra prompt was billed at the full rate and
  the hold's worst case did not cover a cache write. Some third-party price tables quote lower
  figures (Terra $2 / $12, Luna $0.20 / $1.20); no first-party source gives those, so the list
  prices stay, and the daily catalog sync replaces them with OpenRouter's own `pricing` when it runs.

Only rows that still carry 0008's figures are touched; a price that staff or the sync already set is
left alone.
"""

from decimal import Decimal

from django.db import migrations

PER_MILLION = Decimal(1_000_000)
CONTEXT = 1_050_000

# id: (prompt, cache read, cache write) in USD per 1M tokens
CACHE_PRICES = {
    "openai/gpt-5.6-terra": ("2.50", "0.25", "3.125"),
    "openai/gpt-5.6-luna": ("1", "0.10", "1.25"),
}


def _per_token(per_million):
    return Decimal(per_million) / PER_MILLION


def complete(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    for model_id, (prompt, read, write) in CACHE_PRICES.items():
        entry = Entry.objects.filter(id=model_id, prompt_price=_per_token(prompt)).first()
        if entry is None:
            continue
        if not entry.context_length:
            entry.context_length = CONTEXT
        if entry.input_cache_read_price is None:
            entry.input_cache_read_price = _per_token(read)
        if entry.input_cache_write_price is None:
            entry.input_cache_write_price = _per_token(write)
        entry.save()


class Migration(migrations.Migration):
    dependencies = [("gateway", "0008_seed_current_defaults")]

    operations = [migrations.RunPython(complete, migrations.RunPython.noop)]
