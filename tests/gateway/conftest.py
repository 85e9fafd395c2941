"""Gateway test fixtures: providers configured against a mocked network, real-shape upstream
answers (OpenRouter chat completions with `usage.cost`, its SSE stream, error bodies), funded users."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

OPENROUTER_HOST = "openrouter.ai"
OPENAI_HOST = "api.openai.com"
ANTHROPIC_HOST = "api.anthropic.com"
GEMINI_HOST = "generativelanguage.googleapis.com"
GROQ_HOST = "api.groq.com"
ZAI_HOST = "api.z.ai"


def openrouter_completion(
    *,
    model: str = "openai/gpt-4o",
    content: str = "Hello there!",
    prompt_tokens: int = 14,
    completion_tokens: int = 9,
    cost: str | None = "0.000125",
    upstream: str = "OpenAI",
) -> dict:
    """An OpenRouter chat completion as its docs show it, with usage accounting."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
        "is_byok": False,
    }
    if cost is not None:
        usage["cost"] = Decimal(cost)
        usage["cost_details"] = {"upstream_inference_cost": None}
    return {
        "id": "gen-1761234567-AbCdEfGhIjKlMnOp",
        "provider": upstream,
        "model": model,
        "object": "chat.completion",
        "created": 1761234567,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "reasoning": None},
            }
        ],
        "usage": usage,
    }


def openai_completion(
    *,
    model: str = "gpt-4o-2024-08-06",
    content: str = "Direct hello",
    prompt_tokens: int = 20,
    completion_tokens: int = 10,
) -> dict:
    """OpenAI's own chat completion shape (no cost: priced from the catalog)."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }


def anthropic_message(
    *, content: str = "Claude hello", input_tokens: int = 12, output_tokens: int = 6
) -> dict:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": content}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def claude_message(
    *,
    model: str = "claude-sonnet-4-6",
    content: list | None = None,
    stop_reason: str = "end_turn",
    input_tokens: int = 25,
    output_tokens: int = 12,
    cache_read: int = 0,
    cache_write: int = 0,
    message_id: str = "msg_013Zva2CMHLNnXjNJJKqJ2EF",
) -> dict:
    """A Messages API answer as Anthropic's reference shows it."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content or [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def assert_anthropic_error(body: dict, described: str = "") -> None:
    """An error body in Anthropic's shape (what its SDKs parse): type error, a typed error object with a
    message, our code as `details.error_code`."""
    assert body.get("type") == "error", described
    error = body["error"]
    assert error["type"] in ANTHROPIC_ERROR_TYPES, described
    assert isinstance(error["message"], str) and error["message"], described
    assert isinstance(error["details"]["error_code"], str) and error["details"]["error_code"], described


# Anthropic's error types (anthropic.types.shared.ErrorType).
ANTHROPIC_ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
    "conflict_error",
}


def openrouter_error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "metadata": {"provider_name": "OpenAI"}}}


def openrouter_stream(
    *,
    model: str = "openai/gpt-4o",
    pieces: tuple[str, ...] = ("Hel", "lo ", "world"),
    cost: str = "0.000042",
    prompt_tokens: int = 10,
    completion_tokens: int = 3,
    upstream: str = "OpenAI",
    with_usage: bool = True,
) -> bytes:
    """OpenRouter's SSE: a processing comment, content chunks, a finish chunk, the usage chunk, [DONE]."""
    base = {
        "id": "gen-1761234567-StReAm",
        "provider": upstream,
        "model": model,
        "object": "chat.completion.chunk",
        "created": 1761234567,
    }
    events = [b": OPENROUTER PROCESSING\n\n"]
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        chunk = {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "finish_reason": None,
                    "native_finish_reason": None,
                    "logprobs": None,
                }
            ],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    finish = {
        **base,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    events.append(b"data: " + json.dumps(finish).encode() + b"\n\n")
    if with_usage:
        usage = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "cost": "COST",
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0},
                "cost_details": {"upstream_inference_cost": None},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
        # The cost goes out as a JSON number with its exact digits.
        events.append(b"data: " + json.dumps(usage).replace('"COST"', cost).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def raw_json(body) -> bytes:
    """JSON with Decimals written as exact numbers (as upstreams send `usage.cost`)."""
    exact: list[Decimal] = []

    def mark(value):
        if isinstance(value, Decimal):
            exact.append(value)
            return f"__decimal_{len(exact) - 1}__"
        raise TypeError(type(value).__name__)

    text = json.dumps(body, default=mark)
    for i, value in enumerate(exact):
        text = text.replace(f'"__decimal_{i}__"', str(value))
    return text.encode()


def json_response(status: int, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=raw_json(body), headers={"content-type": "application/json", **(headers or {})}
    )


def sse_response(payload: bytes) -> httpx.Response:
    return httpx.Response(200, content=payload, headers={"content-type": "text/event-stream"})


class FakeNetwork:
    """The mocked network: one responder per host; every request is recorded with its JSON body."""

    def __init__(self):
        self.responders: dict[str, Callable[[httpx.Request, dict], httpx.Response]] = {}
        self.calls: list[tuple[str, dict]] = []
        self.requests: list[httpx.Request] = []

    def on(self, host: str, responder) -> None:
        """`responder` is a function (request, json_body) -> httpx.Response, or a list of responses."""
        if isinstance(responder, list):
            queue = list(responder)

            def responder(request, body, _queue=queue):
                item = _queue.pop(0) if len(_queue) > 1 else _queue[0]
                if isinstance(item, Exception):
                    raise item
                return item

        self.responders[host] = responder

    def hosts(self) -> list[str]:
        return [host for host, _ in self.calls]

    def bodies(self, host: str) -> list[dict]:
        return [body for h, body in self.calls if h == host]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.calls.append((request.url.host, body))
        self.requests.append(request)
        responder = self.responders.get(request.url.host)
        if responder is None:
            raise httpx.ConnectError("no route in the fake network", request=request)
        return responder(request, body)


@pytest.fixture
def network():
    from gateway import transport

    fake = FakeNetwork()
    transport.set_transport_for_tests(httpx.MockTransport(fake.handle))
    yield fake
    transport.set_transport_for_tests(None)


@pytest.fixture
def catalog(db):
    """The seeded catalog and matrix (a transactional test's flush removes the migration's seed)."""
    import importlib

    from django.apps import apps

    importlib.import_module("gateway.migrations.0003_seed_catalog_routing").seed(apps, None)
    importlib.import_module("gateway.migrations.0006_embeddings_and_stored_responses").seed(apps, None)
    importlib.import_module("gateway.migrations.0005_catalog_price_components").seed(apps, None)
    importlib.import_module("gateway.migrations.0008_seed_current_defaults").seed(apps, None)
    importlib.import_module("gateway.migrations.0010_model_aliases").seed(apps, None)


@pytest.fixture
def providers(settings, network, catalog):
    """OpenRouter plus every direct provider configured (keys are fakes; the network is mocked)."""
    settings.DEBUG = False
    settings.USE_OPENROUTER = True
    settings.OPENROUTER_API_KEY = "sk-or-v1-test-openrouter-key"
    settings.OPENAI_API_KEY = "sk-test-openai-key"
    settings.ANTHROPIC_API_KEY = "sk-ant-test-key"
    settings.GOOGLE_API_KEY = "test-google-key"
    settings.GROQ_API_KEY = "gsk_test_groq_key"
    settings.ZAI_API_KEY = "test-zai-key"
    settings.UPSTREAM_READ_TIMEOUT = 5.0
    # Provider health of one test must not steer the routing of another (Redis outlives tests).
    settings.HEALTH_KEY_PREFIX = f"test-gateway-health-{uuid.uuid4().hex[:8]}"
    return network


@pytest.fixture
def demo_only(settings, catalog):
    """No provider keys: the offline demo provider answers."""
    for name in (
        "OPENROUTER_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GOOGLE_API_KEY",
        "GROQ_API_KEY",
        "ZAI_API_KEY",
        "OLLAMA_BASE_URL",
    ):
        setattr(settings, name, "")
    settings.DEBUG = True


def grant(user, credits: int) -> None:
    from billing.credits import credits_to_micro
    from billing.services import adjustment_create

    adjustment_create(user=user, amount=credits_to_micro(credits), actor=None, reason="test credits")


def balance(user) -> dict:
    from billing.selectors import balance_get

    return balance_get(user=user)


@pytest.fixture
def funded_user(user):
    grant(user, 100)
    return user


@pytest.fixture
def http(api_key):
    """Django's test client with the user's key (async views run on a loop, DB work on this thread)."""
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


@pytest.fixture(autouse=True)
def _close_worker_thread_connections(request):
    """Async views reach the database from asgiref's shared worker thread; close its connection after
    a transactional test so PostgreSQL can drop the test database at the end."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction"):
        from asgiref.sync import SyncToAsync
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def live_gateway():
    """The project's ASGI app served by uvicorn on 127.0.0.1 (in a thread: the mocked network applies)."""
    from smartspec.asgi import application
    from tests.gateway.test_openai_sdk import ServerThread

    with ServerThread(application) as url:
        yield url


@pytest.fixture
def sdk(live_gateway, api_key):
    """The official `openai` SDK, unmodified, pointed at the live gateway with the user's key."""
    import openai

    return openai.OpenAI(base_url=f"{live_gateway}/v1", api_key=api_key, max_retries=0, timeout=20)
