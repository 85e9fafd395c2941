"""Stream a completion through the gateway with the OpenAI SDK; the last chunk carries the usage.

The SDK is a client-side package: `.venv/bin/pip install openai` (or `make install-dev`), then

SMARTSPEC_API_KEY=sk-ss-... .venv/bin/python examples/streaming.py
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("SMARTSPEC_BASE_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ["SMARTSPEC_API_KEY"],
)

stream = client.chat.completions.create(
    model="z-ai/glm-4.7",
    messages=[{"role": "user", "content": "Explain what a credit hold is in two sentences."}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        extra = chunk.usage.model_extra
        tokens = chunk.usage.total_tokens
        print(f"\n[{chunk.model}: {tokens} tokens, ${extra['cost']}, {extra['credits']} credits]")
