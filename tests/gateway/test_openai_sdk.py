"""The official `openai` SDK against a live gateway (uvicorn in a thread, the real ASGI app).

The first tests mock the network at the transport; the acceptance test runs a fake OpenRouter as a
real HTTP server on 127.0.0.1 and points OPENROUTER_BASE_URL at it, so the whole path is real.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import openai
import pytest
import uvicorn

from tests.gateway.conftest import (
    OPENROUTER_HOST,
    balance,
    json_response,
    openrouter_completion,
    openrouter_stream,
    raw_json,
    sse_response,
)
from tests.support import free_port

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]


class _Server(uvicorn.Server):
    async def serve(self, sockets=None):
        from gateway import transport

        try:
            await super().serve(sockets)
        finally:
            # The loop ends with the server: close its pooled upstream client with it.
            await transport.transport_close()


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 from a background thread."""

    def __init__(self, app):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning")
        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_sdk_chat_completion(providers, funded_user, sdk):
    providers.on(
        OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion(cost="0.000125"))
    )
    before = balance(funded_user)["balance"]

    completion = sdk.chat.completions.create(
        model="openai/gpt-4o", messages=HELLO, extra_body={"fallback_models": ["openai/gpt-4o-mini"]}
    )

    assert completion.choices[0].message.content == "Hello there!"
    assert completion.model == "openai/gpt-4o"
    assert completion.usage.total_tokens == 23
    # A JSON number, as typed clients expect (pydantic reads it as a float).
    assert completion.usage.model_extra["credits"] == 0.125
    assert before - balance(funded_user)["balance"] == 125_000


def test_sdk_streaming_with_usage(providers, funded_user, sdk):
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream(cost="0.000042")))
    before = balance(funded_user)["balance"]

    stream = sdk.chat.completions.create(
        model="openai/gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world"
    assert chunks[-1].usage.completion_tokens == 3 and chunks[-1].usage.model_extra["cost"] == 0.000042
    assert before - balance(funded_user)["balance"] == 42_000
    assert balance(funded_user)["held"] == 0


def test_sdk_models_list(providers, funded_user, sdk):
    models = {m.id: m for m in sdk.models.list()}
    assert {"openai/gpt-4o", "anthropic/claude-sonnet-4.6", "z-ai/glm-4.7"} <= set(models)
    gpt4o = models["openai/gpt-4o"]
    assert gpt4o.owned_by == "openai"
    assert Decimal(gpt4o.model_extra["pricing"]["prompt"]) == Decimal("0.0000025")


def test_sdk_errors_are_typed(providers, user, sdk):
    with pytest.raises(openai.APIStatusError) as exc:
        sdk.chat.completions.create(model="openai/gpt-4o", messages=HELLO)  # no credits
    assert exc.value.status_code == 402
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="acme/unknown", messages=HELLO)


class FakeOpenRouter:
    """A tiny OpenRouter on a real socket: real-shape answers with `usage.cost`, streamed or not."""

    def __init__(self, cost: str):
        self.cost = cost
        self.requests: list[tuple[dict, dict]] = []

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((request, headers))
        if request.get("stream"):
            payload = openrouter_stream(model=request["model"], cost=self.cost)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for event in payload.split(b"\n\n")[:-1]:
                await send({"type": "http.response.body", "body": event + b"\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        payload = raw_json(openrouter_completion(model=request["model"], cost=self.cost))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def test_acceptance_sdk_through_a_real_fake_openrouter_moves_the_balance_by_cost(
    settings, catalog, funded_user, api_key
):
    fake = FakeOpenRouter(cost="0.000321")
    with ServerThread(fake) as fake_url:
        settings.DEBUG = False
        settings.OPENROUTER_API_KEY = "sk-or-v1-acceptance"
        settings.OPENROUTER_BASE_URL = f"{fake_url}/api/v1"
        settings.OPENROUTER_SITE_URL = "https://gateway.example"
        from smartspec.asgi import application

        with ServerThread(application) as gateway_url:
            client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=20)
            start = balance(funded_user)["balance"]

            completion = client.chat.completions.create(model="anthropic/claude-sonnet-4.6", messages=HELLO)
            after_one = balance(funded_user)["balance"]
            streamed = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model="auto", messages=HELLO, stream=True, extra_body={"task_type": "analysis"}
                )
                if c.choices
            )
            after_two = balance(funded_user)["balance"]

    assert completion.choices[0].message.content == "Hello there!"
    assert completion.model == "anthropic/claude-sonnet-4.6"
    assert streamed == "Hello world"
    # $0.000321 x 1000 credits/USD = 0.321 credits = 321,000 micro-credits, each call.
    assert start - after_one == 321_000
    assert after_one - after_two == 321_000
    assert balance(funded_user)["held"] == 0
    (first, first_headers), (second, _) = fake.requests
    # analysis/balanced is seeded with GPT-4o's successor.
    assert first["model"] == "anthropic/claude-sonnet-4.6" and second["model"] == "openai/gpt-5.6-terra"
    assert first_headers["authorization"] == "Bearer sk-or-v1-acceptance"
    assert first_headers["http-referer"] == "https://gateway.example"
    assert second["stream"] is True
