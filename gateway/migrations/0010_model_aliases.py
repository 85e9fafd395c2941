"""Model aliases: Anthropic's own model ids resolve to catalog ids, so Claude Code and the Anthropic SDKs
(which send `claude-sonnet-4-5-20250929`, `claude-haiku-4-5-20251001`, ...) work unchanged.

Seeded: the dateless and dated ids Anthropic publishes for each Claude model the catalog holds
(Anthropic's models overview: a model's dated snapshot id and its alias, e.g. `claude-sonnet-4-5` for
`claude-sonnet-4-5-20250929`). Claude Sonnet 4.5 and Claude Opus 4.1 are still the defaults of many
Claude Code installs but were not in the catalog; they are added at Anthropic's list prices per 1M
tokens (Sonnet 4.5: $3 / $15, cache read $0.30, 5-minute write $3.75, 1-hour write $6, as Sonnet 4.6;
Opus 4.1: $15 / $75, $1.50 / $18.75 / $30), with OpenRouter's ids `anthropic/claude-sonnet-4.5` (1M
context, as OpenRouter lists it) and `anthropic/claude-opus-4.1`, and active: the daily catalog sync
retires either one once OpenRouter stops listing it. Aliases of retired models (Sonnet 4, 3.5 Sonnet,
3.5 Haiku) resolve too, so the caller hears the 404 that names the successor.
"""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

PER_MILLION = Decimal(1_000_000)

# id, display name, context, USD per 1M: prompt, completion, cache read, 5-minute write, 1-hour write;
# Anthropic's own id
NEW_MODELS = [
    ("anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", 1000000, "3", "15", "0.30", "3.75", "6",
     "claude-sonnet-4-5-20250929"),
    ("anthropic/claude-opus-4.1", "Anthropic: Claude Opus 4.1", 200000, "15", "75", "1.50", "18.75", "30",
     "claude-opus-4-1-20250805"),
]  # fmt: skip

ALIASES = {
    "anthropic/claude-sonnet-4.6": ["claude-sonnet-4-6"],
    "anthropic/claude-sonnet-4.5": ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
    "anthropic/claude-opus-4.1": ["claude-opus-4-1", "claude-opus-4-1-20250805"],
    "anthropic/claude-haiku-4.5": ["claude-haiku-4-5", "claude-haiku-4-5-20251001"],
    "anthropic/claude-sonnet-4": ["claude-sonnet-4-0", "claude-sonnet-4-20250514"],
    "anthropic/claude-3.5-sonnet": [
        "claude-3-5-sonnet-latest",
        "claude-3-5-sonnet-20241022",
        "claude-3-5-sonnet-20240620",
    ],
    "anthropic/claude-3.5-haiku": ["claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"],
}


def _per_token(per_million):
    return Decimal(per_million) / PER_MILLION


def seed(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    Alias = apps.get_model("gateway", "ModelAlias")
    for model_id, name, context, prompt, completion, read, write, write_1h, direct in NEW_MODELS:
        Entry.objects.get_or_create(
            id=model_id,
            defaults={
                "display_name": name,
                "context_length": context,
                "prompt_price": _per_token(prompt),
                "completion_price": _per_token(completion),
                "input_cache_read_price": _per_token(read),
                "input_cache_write_price": _per_token(write),
                "input_cache_write_1h_price": _per_token(write_1h),
                "providers": {"openrouter": model_id, "anthropic": direct},
                "zdr": True,
            },
        )
    known = set(Entry.objects.filter(id__in=list(ALIASES)).values_list("id", flat=True))
    for model_id, aliases in ALIASES.items():
        if model_id not in known:
            continue
        for alias in aliases:
            Alias.objects.get_or_create(alias=alias, defaults={"model_id": model_id, "source": "seed"})


def unseed(apps, schema_editor):
    apps.get_model("gateway", "ModelAlias").objects.filter(source="seed").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0009_gpt56_verified"),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelAlias",
            fields=[
                (
                    "alias",
                    models.CharField(
                        help_text="The other name, e.g. claude-sonnet-4-5.",
                        max_length=200,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        choices=[("seed", "Seed"), ("sync", "Sync"), ("staff", "Staff")],
                        default="staff",
                        help_text="seed / sync add aliases; the sync never changes one staff set.",
                        max_length=8,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "model",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="aliases",
                        to="gateway.modelcatalogentry",
                    ),
                ),
            ],
            options={
                "verbose_name": "model alias",
                "verbose_name_plural": "model aliases",
                "ordering": ["alias"],
            },
        ),
        migrations.RunPython(seed, unseed),
    ]
