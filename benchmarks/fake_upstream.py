"""A fast fake OpenAI-compatible upstream (OpenRouter-shaped) for the benchmarks.

Plain ASGI, no framework, so the upstream costs as little as possible:

    FAKE_LATENCY_MS=0 FAKE_TOKENS=16 uvicorn benchmarks.fake_upstream:app --port 9100

- POST /v1/chat/completions answers JSON, or SSE when the body has `"stream": true`
  (FAKE_TOKENS chunks, FAKE_CHUNK_INTERVAL_MS apart, then a usage chunk and [DONE]).
- POST /v1/embeddings answers OpenAI's embeddings shape, one vector of FAKE_EMBEDDING_DIMS
  (default 1536, text-embedding-3-small's size) per input.
- GET /v1/models lists one model.
Every answer carries `usage.cost` as OpenRouter's does, so billing runs its real path.
"""

import asyncio
import json
import os
import time
from decimal import Decimal

LATENCY = float(os.environ.get("FAKE_LATENCY_MS", "0")) / 1000
TOKENS = int(os.environ.get("FAKE_TOKENS", "16"))
EMBEDDING_DIMS = int(os.environ.get("FAKE_EMBEDDING_DIMS", "1536"))
CHUNK_INTERVAL = float(os.environ.get("FAKE_CHUNK_INTERVAL_MS", "0")) / 1000
PROMPT_TOKENS = 12
# What OpenRouter would charge at gpt-4o-mini's catalog prices ($0.15 / $0.60 per 1M tokens), so the
# cost stays within the gateway's hold (a flat $0.000042 exceeded it: every call was capped, flagged
# and logged, a path real traffic does not take). OpenRouter sends cost as a JSON number; it is
# spliced in as text so no float is involved.
COST = f"{Decimal('0.00000015') * PROMPT_TOKENS + Decimal('0.0000006') * TOKENS:f}"
_USAGE_MARK = "__usage__"
_USAGE_JSON = (
    f'{{"prompt_tokens": {PROMPT_TOKENS}, "completion_tokens": {TOKENS}, '
    f'"total_tokens": {PROMPT_TOKENS + TOKENS}, "cost": {COST}}}'
)


def _dumps(body: dict) -> bytes:
    return json.dumps(body).replace(f'"{_USAGE_MARK}"', _USAGE_JSON).encode()


# "Say hi" is 2 tokens; priced as text-embedding-3-small is ($0.02 per 1M), within the call's hold.
EMBEDDING_TOKENS = 2
EMBEDDING_PRICE = Decimal("0.00000002")
# One vector for every input, serialized once: the upstream should cost as little as possible.
_VECTOR_JSON = json.dumps([round((i % 97) / 97 - 0.5, 6) for i in range(EMBEDDING_DIMS)])


def _embeddings(model: str, inputs) -> bytes:
    count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    tokens = EMBEDDING_TOKENS * count
    usage = f'{{"prompt_tokens": {tokens}, "total_tokens": {tokens}, "cost": {EMBEDDING_PRICE * tokens:f}}}'
    rows = ", ".join(
        f'{{"object": "embedding", "index": {i}, "embedding": {_VECTOR_JSON}}}' for i in range(count)
    )
    head = (
        f'"id": "gen-emb-bench", "object": "list", "provider": "FakeUpstream", "model": {json.dumps(model)}'
    )
    return f'{{{head}, "data": [{rows}], "usage": {usage}}}'.encode()


def _completion(model: str) -> bytes:
    return _dumps(
        {
            "id": "gen-bench",
            "provider": "FakeUpstream",
            "model": model,
            "object": "chat.completion",
            "created": int(time.time()),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "tok " * TOKENS},
                }
            ],
            "usage": _USAGE_MARK,
        }
    )


def _chunk(model: str, delta: dict, finish=None, usage: bool = False) -> bytes:
    body = {
        "id": "gen-bench",
        "provider": "FakeUpstream",
        "model": model,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = _USAGE_MARK
    return b"data: " + _dumps(body) + b"\n\n"


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _json_response(send, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.endswith("/models"):
        await _json_response(
            send, json.dumps({"data": [{"id": "openai/gpt-4o-mini", "context_length": 128000}]}).encode()
        )
        return
    request = json.loads(await _read_body(receive) or b"{}")
    model = request.get("model") or "openai/gpt-4o-mini"
    if LATENCY:
        await asyncio.sleep(LATENCY)
    if path.endswith("/embeddings"):
        await _json_response(send, _embeddings(model, request.get("input")))
        return
    if not request.get("stream"):
        await _json_response(send, _completion(model))
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    await send(
        {
            "type": "http.response.body",
            "body": _chunk(model, {"role": "assistant", "content": ""}),
            "more_body": True,
        }
    )
    for i in range(TOKENS):
        if CHUNK_INTERVAL:
            await asyncio.sleep(CHUNK_INTERVAL)
        finish = "stop" if i == TOKENS - 1 else None
        await send(
            {
                "type": "http.response.body",
                "body": _chunk(model, {"content": "tok "}, finish),
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": _chunk(model, {}, usage=True), "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
