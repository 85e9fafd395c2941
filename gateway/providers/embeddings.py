"""Embeddings on each wire format that has them: pure translation, no I/O.

- OpenAI-compatible (OpenAI, OpenRouter): `POST {base}/embeddings` with `input` (strings or token
  arrays), `dimensions`; the answer's `data[].embedding` and `usage.prompt_tokens` (OpenRouter adds
  `usage.cost`). Floats are always asked for; the face encodes base64 itself.
- Gemini: `POST {base}/models/{model}:batchEmbedContents`, one request per input with
  `outputDimensionality`; the answer's `embeddings[].values` (no usage: estimated from the text).
- Ollama: `POST {host}/api/embed` with `input` and `dimensions`; `embeddings` and `prompt_eval_count`.
Token-array input only goes to OpenAI-compatible targets (the router skips the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from gateway.providers._common import load_json, make_usage, malformed
from gateway.providers.base import (
    WIRE_DEMO,
    WIRE_GEMINI,
    WIRE_OPENAI_COMPAT,
    ProviderConfig,
    UpstreamRequest,
    Usage,
)

# Providers whose API serves embeddings (by name: Groq and Z.AI speak OpenAI's wire but have none).
EMBEDDING_PROVIDERS = frozenset({"openrouter", "openai", "google", "ollama", "demo"})
DEMO_DIMENSIONS = 16


@dataclass(slots=True)
class EmbeddingsRequest:
    model: str  # the provider's native model name
    input: list[Any]  # strings, or token arrays (lists of ints)
    dimensions: int | None = None
    user: str | None = None
    provider: dict[str, Any] | None = None  # OpenRouter's provider preferences (privacy, sort, caps)


@dataclass(slots=True)
class EmbeddingsResult:
    vectors: list[list[float]]
    model: str
    provider: str
    usage: Usage | None


def token_input(request_input: list[Any]) -> bool:
    return any(isinstance(item, list) for item in request_input)


def can_embed(config: ProviderConfig, request_input: list[Any]) -> str:
    """Why `config` cannot serve these embeddings ("" when it can)."""
    if config.name not in EMBEDDING_PROVIDERS:
        return f"{config.name} serves no embeddings"
    if token_input(request_input) and config.wire != WIRE_OPENAI_COMPAT and config.wire != WIRE_DEMO:
        return f"token-array input cannot be sent to {config.name}"
    if token_input(request_input) and config.name == "ollama":
        return "token-array input cannot be sent to ollama"
    return ""


def _ollama_host(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def build_request(request: EmbeddingsRequest, config: ProviderConfig) -> UpstreamRequest:
    headers = {"accept": "application/json", **config.headers}
    if config.wire == WIRE_GEMINI:
        model = quote(request.model.removeprefix("models/"), safe="")
        one = {"model": f"models/{request.model.removeprefix('models/')}"}
        if request.dimensions:
            one["outputDimensionality"] = request.dimensions
        body = {"requests": [{**one, "content": {"parts": [{"text": text}]}} for text in request.input]}
        headers["x-goog-api-key"] = config.api_key
        url = f"{config.base_url.rstrip('/')}/models/{model}:batchEmbedContents"
        return UpstreamRequest(method="POST", url=url, headers=headers, json=body)
    if config.name == "ollama":
        body = {"model": request.model, "input": request.input}
        if request.dimensions:
            body["dimensions"] = request.dimensions
        return UpstreamRequest(
            method="POST", url=f"{_ollama_host(config.base_url)}/api/embed", headers=headers, json=body
        )
    body = {"model": request.model, "input": request.input, "encoding_format": "float"}
    if request.dimensions:
        body["dimensions"] = request.dimensions
    if request.user:
        body["user"] = request.user
    if request.provider and config.name == "openrouter":
        body["provider"] = request.provider
    if config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    return UpstreamRequest(
        method="POST", url=f"{config.base_url.rstrip('/')}/embeddings", headers=headers, json=body
    )


# What a vector's numbers parse to (`load_json` reads fractions as Decimal); bool is not among them.
_NUMBER_TYPES = frozenset({Decimal, int, float})


def _vector(value: Any, provider: str) -> list[float]:
    # Checked and converted with map(): a vector has hundreds to thousands of numbers, and a Python
    # loop over them cost more CPU than all the rest of an embeddings call.
    if not isinstance(value, list) or not value or not set(map(type, value)) <= _NUMBER_TYPES:
        raise malformed(provider)
    return list(map(float, value))


def parse_response(body: bytes, config: ProviderConfig, *, count: int) -> EmbeddingsResult:
    data = load_json(body, config.name)
    if not isinstance(data, dict) or data.get("error"):
        raise malformed(config.name)
    usage = None
    if config.wire == WIRE_GEMINI:
        rows = data.get("embeddings")
        if not isinstance(rows, list):
            raise malformed(config.name)
        vectors = [_vector(row.get("values") if isinstance(row, dict) else None, config.name) for row in rows]
    elif config.name == "ollama":
        rows = data.get("embeddings")
        if not isinstance(rows, list):
            raise malformed(config.name)
        vectors = [_vector(row, config.name) for row in rows]
        usage = make_usage(data.get("prompt_eval_count"), 0)
    else:
        rows = data.get("data")
        if not isinstance(rows, list):
            raise malformed(config.name)
        ordered = sorted(
            (row for row in rows if isinstance(row, dict)),
            key=lambda row: row.get("index") if isinstance(row.get("index"), int) else 0,
        )
        vectors = [_vector(row.get("embedding"), config.name) for row in ordered]
        raw = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        usage = make_usage(raw.get("prompt_tokens"), 0, raw.get("cost"))
    if len(vectors) != count:
        raise malformed(config.name)
    return EmbeddingsResult(
        vectors=vectors,
        model=str(data.get("model") or ""),
        provider=str(data.get("provider") or config.name),
        usage=usage,
    )


def demo_embed(request: EmbeddingsRequest, config: ProviderConfig) -> EmbeddingsResult:
    """The offline demo: a deterministic unit-length vector per input, costing nothing."""
    import hashlib
    import math

    size = request.dimensions or DEMO_DIMENSIONS
    vectors = []
    tokens = 0
    for item in request.input:
        text = item if isinstance(item, str) else " ".join(str(t) for t in item)
        tokens += max(1, (len(text) + 3) // 4) if isinstance(item, str) else max(1, len(item))
        digest = hashlib.sha256(text.encode()).digest()
        raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(size)]
        norm = math.sqrt(sum(x * x for x in raw)) or 1.0
        vectors.append([x / norm for x in raw])
    return EmbeddingsResult(
        vectors=vectors,
        model=request.model,
        provider=config.name,
        usage=Usage(prompt_tokens=tokens, completion_tokens=0),
    )
