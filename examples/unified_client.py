"""The unified client from Python inside the project (routing and fallbacks, no credits involved).

    .venv/bin/python examples/unified_client.py

Run from the repository root: it loads the project's settings (and `.env`) like `manage.py` does.
"""

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

import django

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402

from gateway import transport  # noqa: E402
from gateway.client import get_available_models, get_unified_client  # noqa: E402


async def main() -> None:
    models = await sync_to_async(get_available_models)()
    print(f"{len(models)} models available, e.g. {models[0]['id']}")
    try:
        await chat()
    finally:
        await transport.transport_close()


async def chat() -> None:
    client = get_unified_client()
    response = await client.chat(
        [{"role": "user", "content": "Plan a three-step database migration."}],
        task_type="planning",
        budget_priority="balanced",
        fallback_models=["openai/gpt-4o-mini"],
        max_price={"prompt": 0.01, "completion": 0.03},  # USD per 1K tokens
        max_tokens=300,
    )
    print(response.content)
    print(f"model={response.model} provider={response.provider} fallback_used={response.fallback_used}")
    print(f"usage={response.usage} cost_usd={response.cost_usd} latency_ms={response.latency_ms}")
    print("attempts:", response.attempts)


if __name__ == "__main__":
    asyncio.run(main())
