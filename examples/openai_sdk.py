"""Chat through the gateway with the official OpenAI SDK (non-streaming), then list the models.

The SDK is a client-side package: `.venv/bin/pip install openai` (or `make install-dev`), then

SMARTSPEC_API_KEY=sk-ss-... .venv/bin/python examples/openai_sdk.py
SMARTSPEC_BASE_URL defaults to http://127.0.0.1:8000/v1 (`make run`).
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("SMARTSPEC_BASE_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ["SMARTSPEC_API_KEY"],
)

# An explicit model, with a fallback and provider preferences (gateway extension fields).
completion = client.chat.completions.create(
    model="openai/gpt-4o-mini",
    messages=[{"role": "user", "content": "Name three prime numbers."}],
    max_tokens=200,
    extra_body={
        "fallback_models": ["google/gemini-3.1-flash-lite"],
        "provider": {"sort": "price", "data_collection": "deny"},
    },
)
print(completion.choices[0].message.content)
print(f"answered by {completion.model} via {completion.model_extra['provider']}")
print(
    f"usage: {completion.usage.total_tokens} tokens, ${completion.usage.model_extra['cost']}, "
    f"{completion.usage.model_extra['credits']} credits"
)

# No model: the task_type x budget_priority matrix picks one.
routed = client.chat.completions.create(
    model="auto",
    messages=[{"role": "user", "content": "Write a haiku about caching."}],
    extra_body={"task_type": "simple", "budget_priority": "cost"},
)
print(f"the matrix chose {routed.model}")

print("models:", ", ".join(model.id for model in list(client.models.list())[:5]), "...")
