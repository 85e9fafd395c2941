"""Seed the catalog with the routing matrix's models and common current ones (OpenRouter prices,
USD per token), and the matrix itself (DESIGN.md "Models and routing"). Staff edit both in admin;
the catalog sync task refreshes prices."""

from decimal import Decimal

from django.db import migrations

# id, display name, context length, prompt USD/token, completion USD/token, direct providers, zdr
MODELS = [
    ("openai/gpt-4o", "OpenAI: GPT-4o", 128000, "0.0000025", "0.00001", {"openai": "gpt-4o"}, True),
    ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128000, "0.00000015", "0.0000006", {"openai": "gpt-4o-mini"}, True),
    ("openai/gpt-4.1", "OpenAI: GPT-4.1", 1047576, "0.000002", "0.000008", {"openai": "gpt-4.1"}, True),
    ("openai/gpt-4.1-mini", "OpenAI: GPT-4.1 Mini", 1047576, "0.0000004", "0.0000016", {"openai": "gpt-4.1-mini"}, True),
    (
        "anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 200000, "0.000003", "0.000015",
        {"anthropic": "claude-3-5-sonnet-20241022"}, True,
    ),
    (
        "anthropic/claude-3.5-haiku", "Anthropic: Claude 3.5 Haiku", 200000, "0.0000008", "0.000004",
        {"anthropic": "claude-3-5-haiku-20241022"}, True,
    ),
    (
        "anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4", 200000, "0.000003", "0.000015",
        {"anthropic": "claude-sonnet-4-20250514"}, True,
    ),
    (
        "google/gemini-flash-1.5", "Google: Gemini Flash 1.5", 1000000, "0.000000075", "0.0000003",
        {"google": "gemini-1.5-flash"}, True,
    ),
    (
        "google/gemini-2.5-flash", "Google: Gemini 2.5 Flash", 1048576, "0.0000003", "0.0000025",
        {"google": "gemini-2.5-flash"}, True,
    ),
    (
        "google/gemini-2.5-pro", "Google: Gemini 2.5 Pro", 1048576, "0.00000125", "0.00001",
        {"google": "gemini-2.5-pro"}, True,
    ),
    (
        "meta-llama/llama-3.1-70b-instruct", "Meta: Llama 3.1 70B Instruct", 131072, "0.0000001", "0.00000028",
        {}, True,
    ),
    (
        "meta-llama/llama-3.3-70b-instruct", "Meta: Llama 3.3 70B Instruct", 131072, "0.00000013", "0.0000004",
        {"groq": "llama-3.3-70b-versatile"}, True,
    ),
    (
        "meta-llama/llama-3.1-8b-instruct", "Meta: Llama 3.1 8B Instruct", 131072, "0.00000002", "0.00000003",
        {"groq": "llama-3.1-8b-instant"}, True,
    ),
    ("z-ai/glm-4.7", "Z.AI: GLM 4.7", 202752, "0.0000004", "0.0000015", {"zai": "glm-4.7"}, False),
]

SONNET, FLASH, LLAMA = "anthropic/claude-3.5-sonnet", "google/gemini-flash-1.5", "meta-llama/llama-3.1-70b-instruct"
GPT4O, MINI = "openai/gpt-4o", "openai/gpt-4o-mini"
# task_type: (quality, speed, cost, balanced)
MATRIX = {
    "code_generation": (SONNET, FLASH, LLAMA, GPT4O),
    "analysis": (GPT4O, FLASH, LLAMA, GPT4O),
    "planning": (SONNET, MINI, LLAMA, GPT4O),
    "simple": (MINI, FLASH, LLAMA, FLASH),
    "decision": (SONNET, GPT4O, LLAMA, GPT4O),
}
PRIORITIES = ("quality", "speed", "cost", "balanced")


def seed(apps, schema_editor):
    Entry = apps.get_model("gateway", "ModelCatalogEntry")
    Rule = apps.get_model("gateway", "RoutingRule")
    for model_id, name, context, prompt, completion, direct, zdr in MODELS:
        Entry.objects.get_or_create(
            id=model_id,
            defaults={
                "display_name": name,
                "context_length": context,
                "prompt_price": Decimal(prompt),
                "completion_price": Decimal(completion),
                "providers": {"openrouter": model_id, **direct},
                "zdr": zdr,
            },
        )
    for task_type, models in MATRIX.items():
        for priority, model_id in zip(PRIORITIES, models, strict=True):
            Rule.objects.get_or_create(
                task_type=task_type, budget_priority=priority, defaults={"model_id": model_id}
            )


def unseed(apps, schema_editor):
    apps.get_model("gateway", "RoutingRule").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("gateway", "0002_catalog_routing")]

    operations = [migrations.RunPython(seed, unseed)]
