"""Streaming: OpenAI SSE framing, usage with cost, billing of what was produced when the client
hangs up or the upstream breaks, and no hold left behind either way."""

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from tests.gateway.conftest import (
    OPENAI_HOST,
    OPENROUTER_HOST,
    balance,
    json_response,
    openrouter_error,
    openrouter_stream,
    sse_response,
)

HELLO = [{"role": "user", "content": "Say hello"}]


async def events(response) -> list:
    raw = b"".join([part async for part in response.streaming_content]).decode()
    out = []
    for block in raw.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data, parse_float=Decimal))
    return out


def usage_rows():
    from monitoring.models import UsageRecord

    return list(UsageRecord.objects.order_by("id"))


@pytest.fixture
def ahttp(api_key):
    """Django's async test client: streamed answers are consumed on the loop that produced them."""
    from django.test import AsyncClient

    class KeyedClient(AsyncClient):
        # Headers given per request: AsyncClient(headers=...) reach the ASGI scope mangled.
        async def post(self, path, data, **kwargs):
            kwargs.setdefault("content_type", "application/json")
            return await super().post(path, data, headers={"Authorization": f"Bearer {api_key}"}, **kwargs)

    return KeyedClient()


# Async tests reach the database from sync_to_async's thread: real commits are needed.
streamed = pytest.mark.django_db(transaction=True)


@streamed
async def test_stream_is_openai_sse_with_usage_and_cost(providers, funded_user, ahttp):
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream(cost="0.000042")))
    before = (await sync_to_async(balance)(funded_user))["balance"]

    r = await ahttp.post(
        "/v1/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        content_type="application/json",
    )

    assert r.status_code == 200 and r["Content-Type"].startswith("text/event-stream")
    got = await events(r)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello world"
    )
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "openai/gpt-4o" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    usage = chunks[-1]
    assert (
        usage["choices"] == []
        # JSON numbers with their exact digits.
        and str(usage["usage"]["cost"]) == "0.000042"
        and str(usage["usage"]["credits"]) == "0.042000"
    )
    assert before - (await sync_to_async(balance)(funded_user))["balance"] == 42_000
    assert providers.bodies(OPENROUTER_HOST)[0]["stream"] is True
    (row,) = await sync_to_async(usage_rows)()
    assert row.stream and row.status == "ok" and row.credits == 42_000


@streamed
async def test_stream_without_include_usage_has_no_usage_chunk(providers, funded_user, ahttp):
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream()))
    r = await ahttp.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO, "stream": True},
        content_type="application/json",
    )
    assert all("usage" not in c for c in (await events(r))[:-1])
    assert await sync_to_async(before_after_charged)(funded_user) == 42_000


def before_after_charged(user):
    from billing.models import LedgerEntry

    return -sum(e.amount for e in LedgerEntry.objects.filter(account__user=user, kind="usage"))


@streamed
async def test_stream_error_before_first_byte_falls_back(providers, funded_user, ahttp):
    providers.on(OPENROUTER_HOST, [json_response(503, openrouter_error(503, "No endpoints available"))])
    openai_sse = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Direct"},"finish_reason":null}]}\n\n'
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
        b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06",'
        b'"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}\n\n'
        b"data: [DONE]\n\n"
    )
    providers.on(OPENAI_HOST, lambda req, body: sse_response(openai_sse))

    r = await ahttp.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO, "stream": True},
        content_type="application/json",
    )

    got = await events(r)
    assert got[0]["provider"] == "openai"
    assert providers.hosts() == [OPENROUTER_HOST, OPENAI_HOST]
    assert (
        await sync_to_async(before_after_charged)(funded_user) == 150_000
    )  # 20 x 0.0000025 + 10 x 0.00001 USD


@streamed
async def test_stream_all_failing_before_first_byte_is_a_plain_502(providers, funded_user, ahttp):
    providers.on(OPENROUTER_HOST, [json_response(500, openrouter_error(500, "x"))])
    providers.on(OPENAI_HOST, [httpx.ConnectError("refused")])
    before = await sync_to_async(balance)(funded_user)
    r = await ahttp.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO, "stream": True},
        content_type="application/json",
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "all_attempts_failed"
    assert await sync_to_async(balance)(funded_user) == before


class BrokenStream(httpx.AsyncByteStream):
    """An upstream that sends some SSE and then drops the connection."""

    def __init__(self, head: bytes):
        self.head = head

    async def __aiter__(self):
        yield self.head
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


@streamed
async def test_upstream_breaking_mid_stream_bills_what_was_produced(providers, funded_user, ahttp):
    full = openrouter_stream(pieces=("x" * 40, "y" * 40))
    head = full[: full.index(b"y" * 40)]
    head = head[: head.rindex(b"\n\n") + 2]  # the comment and the first content chunk
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: httpx.Response(
            200, stream=BrokenStream(head), headers={"content-type": "text/event-stream"}
        ),
    )

    r = await ahttp.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO, "stream": True},
        content_type="application/json",
    )

    got = await events(r)
    assert got[0]["choices"][0]["delta"]["content"] == "x" * 40
    assert "error" in got[-1]  # the OpenAI SDK raises on an error event
    charged = await sync_to_async(before_after_charged)(funded_user)
    # No usage came: prompt and the 40 bytes produced (10 tokens) are estimated, never zero.
    assert charged > 10 * 10_000  # 10 completion tokens at $0.00001 = 100,000 micro-credits, plus the prompt
    (row,) = await sync_to_async(usage_rows)()
    assert row.status == "error" and row.usage_estimated and row.completion_tokens == 10
    assert (await sync_to_async(balance)(funded_user))["held"] == 0


class SlowStream(httpx.AsyncByteStream):
    """An upstream that sends a first chunk, then waits (the client will hang up meanwhile)."""

    def __init__(self, head: bytes, gate: asyncio.Event):
        self.head, self.gate = head, gate

    async def __aiter__(self):
        yield self.head
        self.gate.set()
        await asyncio.sleep(30)
        yield b"data: [DONE]\n\n"


async def _open_and_hang_up(user):
    from gateway.client import LLMRequest
    from gateway.service import LLMGateway

    stream = await LLMGateway().stream_open(LLMRequest(messages=HELLO, model="openai/gpt-4o"), user)
    received = []

    async def consume():
        async for delta in stream:
            received.append(delta.content)

    task = asyncio.ensure_future(consume())
    while not received:
        await asyncio.sleep(0.01)
    task.cancel()  # what Django's ASGI handler does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await task
    return stream, received


@pytest.mark.django_db
def test_client_disconnect_mid_stream_bills_what_was_produced_and_leaves_no_hold(providers, funded_user):
    full = openrouter_stream(pieces=("a" * 80, "b" * 80))
    head = full[: full.index(b"b" * 80)]
    head = head[: head.rindex(b"\n\n") + 2]
    gate = asyncio.Event()
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: httpx.Response(
            200, stream=SlowStream(head, gate), headers={"content-type": "text/event-stream"}
        ),
    )

    stream, received = async_to_sync(_open_and_hang_up)(funded_user)

    assert received == ["a" * 80]
    assert balance(funded_user)["held"] == 0
    # 80 bytes produced -> 20 completion tokens estimated, plus the prompt estimate; billed, flagged.
    (row,) = usage_rows()
    assert row.status == "cancelled" and row.completion_tokens == 20 and row.usage_estimated
    assert before_after_charged(funded_user) == row.credits == stream.response.credits_charged > 20 * 10_000


@pytest.mark.django_db
def test_stream_that_produced_nothing_costs_nothing(providers, funded_user):
    empty = b": OPENROUTER PROCESSING\n\n"
    providers.on(
        OPENROUTER_HOST,
        lambda req, body: httpx.Response(
            200, stream=BrokenStream(empty), headers={"content-type": "text/event-stream"}
        ),
    )
    from gateway.client import LLMRequest
    from gateway.service import LLMGateway
    from smartspec.errors import UpstreamError

    before = balance(funded_user)
    with pytest.raises(UpstreamError):
        async_to_sync(LLMGateway().stream_open)(
            LLMRequest(messages=HELLO, model="openai/gpt-4o"), funded_user
        )
    assert balance(funded_user) == before


@streamed
async def test_client_gone_before_the_first_byte_leaves_no_hold(providers, funded_user, api_key):
    from django.test import AsyncRequestFactory

    from gateway.views import chat_completions

    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream()))
    request = AsyncRequestFactory().post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO, "stream": True},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    request.request_id = "gone-before-first-byte"
    response = await chat_completions(request)
    assert response.status_code == 200
    assert (await sync_to_async(balance)(funded_user))["held"] > 0

    await sync_to_async(response.close)()  # what Django does when the client is gone
    # The close runs on the loop after this returns: wait for its settle and, after it, its usage row.
    for _ in range(100):
        if (await sync_to_async(balance)(funded_user))["held"] == 0 and await sync_to_async(usage_rows)():
            break
        await asyncio.sleep(0.02)
    assert (await sync_to_async(balance)(funded_user))["held"] == 0
    # The first piece had been received from the upstream: billed for it, flagged as estimated.
    (row,) = await sync_to_async(usage_rows)()
    assert (row.status, row.request_id, row.error_class) == (
        "cancelled",
        "gone-before-first-byte",
        "ClientDisconnected",
    )
    assert row.completion_tokens == 1 and row.usage_estimated and row.credits > 0


@streamed
async def test_a_client_gone_while_its_hold_is_placed_gets_the_hold_back(
    providers, funded_user, api_key, monkeypatch
):
    import threading

    from django.test import AsyncRequestFactory

    from billing.models import CreditHold
    from gateway import service
    from gateway.views import chat_completions
    from smartspec import metrics

    providers.on(OPENROUTER_HOST, lambda req, body: pytest.fail("the upstream must not be called"))
    placed, go_on = threading.Event(), threading.Event()
    hold_place = service.hold_place

    def hold_place_then_wait(**kwargs):
        hold = hold_place(**kwargs)
        placed.set()
        go_on.wait(5)
        return hold

    monkeypatch.setattr(service, "hold_place", hold_place_then_wait)
    request = AsyncRequestFactory().post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HELLO},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    request.request_id = "gone-while-holding"
    in_flight = metrics.HOLDS_IN_FLIGHT._value.get()
    call = asyncio.ensure_future(chat_completions(request))
    await asyncio.to_thread(placed.wait, 5)
    call.cancel()  # what the lean face does when the client disconnects
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(100):
        if (await sync_to_async(balance)(funded_user))["held"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (await sync_to_async(balance)(funded_user))["held"] == 0
    hold = await CreditHold.objects.aget(request_id="gone-while-holding")
    assert (hold.state, hold.charged) == ("released", 0)
    assert metrics.HOLDS_IN_FLIGHT._value.get() == in_flight
