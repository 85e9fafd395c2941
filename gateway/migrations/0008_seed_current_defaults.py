"""Re-seed the routing matrix with current models (as of 2026-12-03) and record the lifecycle of the
integration guide's original choices, which stay each cell's documented `origin`.

The guide's matrix (DESIGN.md "Models and routing") named Claude 3.5 Sonnet, Gemini Flash 1.5, GPT-4o,
GPT-4o-mini and Llama 3.1 70B. Each of them is now retired, deprecated, or superseded; every cell moves
to the current end of its origin's successor chain:

    anthropic/claude-3.5-sonnet -> anthropic/claude-sonnet-4 -> anthropic/claude-sonnet-4.6
    google/gemini-flash-1.5     -> google/gemini-2.5-flash   -> google/gemini-3.1-flash-lite
    openai/gpt-4o                                            -> openai/gpt-5.6-terra
    openai/gpt-4o-mini                                       -> openai/gpt-5.6-luna
    meta-llama/llama-3.1-70b-instruct                        -> meta-llama/llama-3.3-70b-instruct

Sources (read through the project's stored copies of public pages; none could be fetched live, and
where the stored copies are older than today it says so):

- Claude 3.5 Sonnet: retired 2025-10-22 (Anthropic's model-deprecations page; GitLab's removal issue
  quotes "deprecated 2025-08-13, retired 2025-10-22"). Claude Sonnet 4: retired 2026-06-15 (Anthropic
  release notes, as recorded by the ai-provider-watch event 2026-06-15, "recommended upgrades to
  Sonnet 4.6"). Claude Sonnet 4.6: released 2026-02-17, $3 / $15 per 1M tokens, cache read $0.30,
  5-minute write $3.75, 1-hour write $6, 1M-token context (Anthropic pricing as quoted by several
  price pages of Feb-Apr 2026; OpenRouter lists it as `anthropic/claude-sonnet-4.6` at the same
  headline price); direct id `claude-sonnet-4-6` (dateless, as Anthropic names its 4.6 models).
  Requests over 200K prompt tokens are billed at Anthropic's long-context rate ($6 / $22.50) upstream;
  OpenRouter's `usage.cost` reports it. Claude 3.5 Haiku is retired on the Claude API (same sources);
  Claude Haiku 4.5 ($1 / $5, cache 0.1x / 1.25x / 2x) is its successor.
- Gemini 1.5 Flash: shut down in September 2025 (the issue's report; the stored Gemini deprecations
  pages from December 2025 on no longer list 1.5 models, and Vertex AI closed them to new projects on
  2025-04-29). The day, 2025-09-24, is Google's announced 1.5 shutdown date and was not re-read here.
  Gemini 2.5 Flash: shutdown 2026-12-01 (Gemini API deprecations page as read 2026-11-10 and
  republished by aideprecations; Google AI Studio had already withdrawn it on 2026-10-20 per one
  reseller's notice). Google names gemini-3.5-flash-lite as its replacement, but no stored source
  gives that model's OpenRouter id or price; Google's Firebase AI Logic pages (May-June 2026) name
  `gemini-3.1-flash-lite` as the model to update to, and OpenRouter announced it GA as
  `google/gemini-3.1-flash-lite` at $0.25 / $1.50 per 1M tokens, 1,048,576-token context, cache read
  $0.025. The deprecations page gives 2027-05-07 as its earliest shutdown (Google's 12-month window for
  every GA model, not a deprecation), so it is seeded active. Gemini 2.5 Pro: shutdown 2026-12-01
  (same page), recorded retired without a seeded successor.
- GPT-4o, GPT-4o mini, GPT-4.1, GPT-4.1 mini: deprecated, shutdown 2027-01-14 (OpenAI's deprecations
  page, as quoted in October 2026 by several migration guides; GET /v1/models carries the same
  `shutdown_date`). The stored copies disagree on the named replacement (gpt-6-luna, gpt-6.1-sol);
  neither has a price in any stored source. GPT-5.6 is the line OpenAI's deprecations page names as the
  replacement for the October 2026 shutdowns, with prices from OpenAI's Help Center (June 2026):
  gpt-5.6-terra $2.50 / $15, gpt-5.6-luna $1 / $6 (cache read $0.10) per 1M tokens. Their OpenRouter
  ids follow OpenRouter's `openai/<name>` convention and were not seen in a stored OpenRouter listing;
  context lengths are left for the catalog sync to fill. Still callable until 2027-01-14, GPT-4o and
  GPT-4o mini stay in the catalog as deprecated.
- Llama 3.1 70B: no retirement notice found; Llama 3.3 70B is Meta's newer model of the same size and
  OpenRouter's cheapest 70B ($0.10 / $0.32 per 1M tokens, mid-2026 price survey), so the cost cells
  move to it and 3.1 70B names it as successor.

Cells that staff already pointed elsewhere are left alone; only cells still on their origin move. The
catalog sync refreshes every price from OpenRouter's list and retires what it no longer lists.
"""

import datetime
from decimal import Decimal

from django.db import migrations

PER_MILLION = Decimal(1_000_000)

SONNET_35, SONNET_4, SONNET_46 = (
    "anthropic/claude-3.5-sonnet",
    "anthropic/claude-sonnet-4",
    "anthropic/claude-sonnet-4.6",
)
HAIKU_35, HAIKU_45 = "anthropic/claude-3.5-haiku", "anthropic/claude-haiku-4.5"
FLASH_15, FLASH_25, FLASH_LITE_31 = (
    "google/gemini-flash-1.5",
    "google/gemini-2.5-flash",
    "google/gemini-3.1-flash-lite",
)
PRO_25 = "google/gemini-2.5-pro"
GPT4O, MINI, GPT41, GPT41_MINI = (
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-4.1",
    "openai/gpt-4.1-mini",
)
TERRA, LUNA = "openai/gpt-5.6-terra", "openai/gpt-5.6-luna"
LLAMA_31, LLAMA_33 = "meta-llama/llama-3.1-70b-instruct", "meta-llama/llama-3.3-70b-instruct"

# id, display name, context, USD per 1M: prompt, completion, cache read, cache write (5m), cache write 1h;
# direct providers, zdr (as the first seed marks these vendors' models: OpenRouter has zero-retention
# endpoints for OpenAI, Anthropic and Google models)
NEW_MODELS = [
    (SONNET_46, "Anthropic: Claude Sonnet 4.6", 1000000, "3", "15", "0.30", "3.75", "6",
     {"anthropic": "claude-sonnet-4-6"}, True),
    (HAIKU_45, "Anthropic: Claude Haiku 4.5", 200000, "1", "5", "0.10", "1.25", "2",
     {"anthropic": "claude-haiku-4-5"}, True),
    (FLASH_LITE_31, "Google: Gemini 3.1 Flash Lite", 1048576, "0.25", "1.50", "0.025", None, None,
     {"google": "gemini-3.1-flash-lite"}, True),
    (TERRA, "OpenAI: GPT-5.6 Terra", 0, "2.50", "15", None, None, None, {"openai": "gpt-5.6-terra"}, True),
    (LUNA, "OpenAI: GPT-5.6 Luna", 0, "1", "6", "0.10", None, None, {"openai": "gpt-5.6-luna"}, True),
]  # fmt: skip

# id: (status, shutdown date, successor)
LIFECYCLE = {
    SONNET_35: ("retired", datetime.date(2025, 10, 22), SONNET_4),
    SONNET_4: ("retired", datetime.date(2026, 6, 15), SONNET_46),
    HAIKU_35: ("retired", None, HAIKU_45),
    FLASH_15: ("retired", datetime.date(2025, 9, 24), FLASH_25),
    FLASH_25: ("retired", datetime.date(2026, 12, 1), FLASH_LITE_31),
    PRO_25: ("retired", datetime.date(2026, 12, 1), None),
    GPT4O: ("deprecated", datetime.date(2027, 1, 14), TERRA),
    MINI: ("deprecated", datetime.date(2027, 1, 14), LUNA),
    GPT41: ("deprecated", datetime.date(2027, 1, 14), TERRA),
    GPT41_MINI: ("deprecated", datetime.date(2027, 1, 14), LUNA),
    LLAMA_31: ("active", None, LLAMA_33),
}
# A newer price than the first seed's (mid-2026 survey of OpenRouter's list), USD per 1M tokens.
REPRICED = {LLAMA_33: ("0.10", "0.32")}

# The guide's original choice per cell (task_type: quality, speed, cost, balanced) and its current successor.
GUIDE = {
    "code_generation": (SONNET_35, FLASH_15, LLAMA_31, GPT4O),
    "analysis": (GPT4O, FLASH_15, LLAMA_31, GPT4O),
    "planning": (SONNET_35, MINI, LLAMA_31, GPT4O),
    "simple": (MINI, FLASH_15, LLAMA_31, FLASH_15),
    "decision": (SONNET_35, GPT4O, LLAMA_31, GPT4O),
}
CURRENT = {SONNET_35: SONNET_46, FLASH_15: FLASH_LITE_31, GPT4O: TERRA, MINI: LUNA, LLAMA_31: LLAMA_33}
PRIORITIES = ("quality", "speed", "cost", "balanced")


def _per_token(per_million):
    return None if per_million is None else Decimal(per_million) / PER_MILLION


def seed(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    Rule = apps.get_model("gateway", "RoutingRule")
    for model_id, name, context, prompt, completion, read, write, write_1h, direct, zdr in NEW_MODELS:
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
                "providers": {"openrouter": model_id, **direct},
                "zdr": zdr,
            },
        )
    for model_id, (prompt, completion) in REPRICED.items():
        Entry.objects.filter(id=model_id).update(
            prompt_price=_per_token(prompt), completion_price=_per_token(completion)
        )
    for model_id, (status, shutdown, successor) in LIFECYCLE.items():
        Entry.objects.filter(id=model_id).update(
            status=status, shutdown_date=shutdown, successor_id=successor
        )
    for task_type, origins in GUIDE.items():
        for priority, origin in zip(PRIORITIES, origins, strict=True):
            rule, _ = Rule.objects.get_or_create(
                task_type=task_type, budget_priority=priority, defaults={"model_id": origin}
            )
            rule.origin = origin
            if rule.model_id == origin:
                rule.model_id = CURRENT[origin]
            rule.save()


def unseed(apps, schema_editor):
    Rule = apps.get_model("gateway", "RoutingRule")
    for rule in Rule.objects.exclude(origin=""):
        if rule.model_id == CURRENT.get(rule.origin):
            rule.model_id = rule.origin
        rule.origin = ""
        rule.save()
    apps.get_model("gateway", "ModelCatalogEntry").objects.filter(id__in=list(LIFECYCLE)).update(
        status="active", shutdown_date=None, successor=None
    )


class Migration(migrations.Migration):
    dependencies = [("gateway", "0007_catalog_lifecycle")]

    operations = [migrations.RunPython(seed, unseed)]
