"""The wire shapes of the chat APIs: parsing OpenAI-style and native bodies into an `LLMRequest`,
and rendering answers as OpenAI chat completions / chunks or the native `LLMResponse` JSON.

Money in JSON is a decimal string: `usage.cost` / `cost_usd` in USD, `usage.credits` /
`credits_charged` in credits.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.credits import format_credits
from smartspec.errors import InvalidRequest, as_api_error

from .client import FORBIDDEN_FIELDS, PASSTHROUGH_PARAMS, LLMRequest, LLMResponse
from .providers.base import StreamDelta
from .routing import BUDGET_PRIORITIES, DATA_COLLECTION, MAX_FALLBACK_MODELS, SORTS, TASK_TYPES

SSE_DONE = b"data: [DONE]\n\n"


class ProviderPreferencesInput(serializers.Serializer):
    sort = serializers.ChoiceField(choices=SORTS, required=False, allow_null=True)
    data_collection = serializers.ChoiceField(choices=DATA_COLLECTION, required=False, default="allow")
    zdr = serializers.BooleanField(required=False, allow_null=True, default=None)
    max_price = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='{"prompt": USD per 1K tokens, "completion": USD per 1K tokens}',
    )


class _RoutingFields(serializers.Serializer):
    model = serializers.CharField(
        required=False, allow_null=True, help_text="vendor/model, or omitted / 'auto'"
    )
    messages = serializers.ListField(child=serializers.DictField(), allow_empty=False)
    task_type = serializers.ChoiceField(choices=TASK_TYPES, required=False, allow_null=True)
    budget_priority = serializers.ChoiceField(choices=BUDGET_PRIORITIES, required=False, allow_null=True)
    fallback_models = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True, max_length=MAX_FALLBACK_MODELS
    )
    use_openrouter = serializers.BooleanField(required=False, default=True)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    stream = serializers.BooleanField(required=False, default=False)


class ChatCompletionInput(_RoutingFields):
    """OpenAI's chat completion request plus the gateway's extension fields."""

    models = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        max_length=MAX_FALLBACK_MODELS,
        help_text="OpenRouter-style spelling of fallback_models",
    )
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    n = serializers.IntegerField(required=False, min_value=1, max_value=1)
    stream_options = serializers.DictField(required=False, allow_null=True)
    provider = ProviderPreferencesInput(required=False, allow_null=True)


class LLMRequestInput(_RoutingFields):
    """The native request body of `POST /api/llm/chat`."""

    sort = serializers.ChoiceField(choices=SORTS, required=False, allow_null=True)
    data_collection = serializers.ChoiceField(choices=DATA_COLLECTION, required=False, default="allow")
    zdr = serializers.BooleanField(required=False, allow_null=True, default=None)
    max_price = serializers.DictField(required=False, allow_null=True)


class UsageOutput(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class LLMResponseOutput(serializers.Serializer):
    content = serializers.CharField()
    model = serializers.CharField()
    provider = serializers.CharField()
    task_type = serializers.CharField()
    usage = UsageOutput()
    cost_usd = serializers.CharField(help_text="USD, decimal string")
    credits_charged = serializers.CharField(help_text="credits, decimal string")
    latency_ms = serializers.IntegerField()
    fallback_used = serializers.BooleanField()
    attempts = serializers.ListField(child=serializers.DictField())
    request_id = serializers.CharField()
    finish_reason = serializers.CharField(allow_null=True)
    usage_estimated = serializers.BooleanField()


def _validated(serializer_cls, body: dict[str, Any]) -> dict[str, Any]:
    for name in FORBIDDEN_FIELDS:
        if name in body:
            raise InvalidRequest(
                f"{name} cannot be set by clients: the gateway chooses upstreams.", code="forbidden_field"
            )
    serializer = serializer_cls(data=body)
    if not serializer.is_valid():
        # One readable sentence in our error shape, as the DRF APIs give.
        raise as_api_error(serializers.ValidationError(serializer.errors))
    return serializer.validated_data


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in PASSTHROUGH_PARAMS if k in body}


@dataclass(slots=True)
class ParsedCompletion:
    request: LLMRequest
    include_usage: bool


def chat_completion_request(body: dict[str, Any]) -> ParsedCompletion:
    data = _validated(ChatCompletionInput, body)
    if data.get("fallback_models") and data.get("models"):
        raise InvalidRequest("Give fallback_models or models, not both.")
    provider = data.get("provider") or {}
    max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
    stream_options = data.get("stream_options") or {}
    request = LLMRequest(
        messages=data["messages"],
        model=data.get("model"),
        task_type=data.get("task_type"),
        budget_priority=data.get("budget_priority"),
        fallback_models=data.get("fallback_models") or data.get("models"),
        sort=provider.get("sort"),
        data_collection=provider.get("data_collection") or "allow",
        zdr=provider.get("zdr"),
        max_price=provider.get("max_price"),
        temperature=data.get("temperature"),
        max_tokens=max_tokens,
        use_openrouter=data.get("use_openrouter", True),
        stream=data.get("stream", False),
        params=_params(body),
    )
    return ParsedCompletion(request=request, include_usage=bool(stream_options.get("include_usage")))


def llm_request(body: dict[str, Any]) -> LLMRequest:
    data = _validated(LLMRequestInput, body)
    return LLMRequest(
        messages=data["messages"],
        model=data.get("model"),
        task_type=data.get("task_type"),
        budget_priority=data.get("budget_priority"),
        fallback_models=data.get("fallback_models"),
        sort=data.get("sort"),
        data_collection=data.get("data_collection") or "allow",
        zdr=data.get("zdr"),
        max_price=data.get("max_price"),
        temperature=data.get("temperature"),
        max_tokens=data.get("max_tokens"),
        use_openrouter=data.get("use_openrouter", True),
        stream=data.get("stream", False),
        params=_params(body),
    )


def now() -> int:
    return int(time.time())


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), default=str).encode() + b"\n\n"


def usd(value: Decimal) -> str:
    """USD as a plain decimal string without trailing zeros ("0.00015")."""
    return f"{value.normalize():f}"


def _usage(response: LLMResponse) -> dict[str, Any]:
    return {
        **response.usage,
        "cost": usd(response.cost_usd),
        "credits": format_credits(response.credits_charged),
    }


def completion(response: LLMResponse) -> dict[str, Any]:
    message = response.message or {"role": "assistant", "content": response.content}
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": now(),
        "model": response.model,
        "provider": response.provider,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": response.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(response),
    }


def _chunk(stream, created: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{stream.prepared.request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": stream.model,
        "provider": stream.provider,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def completion_chunk(stream, delta: StreamDelta, created: int, *, first: bool) -> dict[str, Any] | None:
    """The chunk for one upstream delta; None for a delta with nothing for the client (usage only)."""
    body: dict[str, Any] = {"role": "assistant"} if first else {}
    if delta.content:
        body["content"] = delta.content
    if delta.tool_calls:
        body["tool_calls"] = delta.tool_calls
    if not body and not delta.finish_reason:
        return None
    return _chunk(stream, created, body, delta.finish_reason)


def completion_final_chunks(
    stream, created: int, *, include_usage: bool, finish_sent: bool
) -> list[dict[str, Any]]:
    """After the last delta: a finish chunk if the upstream sent none, then usage when asked for."""
    chunks = []
    if not finish_sent:
        chunks.append(_chunk(stream, created, {}, stream.response.finish_reason or "stop"))
    if include_usage:
        chunk = _chunk(stream, created, {}, None)
        chunk["choices"] = []
        chunk["usage"] = _usage(stream.response)
        chunks.append(chunk)
    return chunks


def llm_response(response: LLMResponse) -> dict[str, Any]:
    return {
        "content": response.content,
        "model": response.model,
        "provider": response.provider,
        "task_type": response.task_type,
        "usage": response.usage,
        "cost_usd": usd(response.cost_usd),
        "credits_charged": format_credits(response.credits_charged),
        "latency_ms": response.latency_ms,
        "fallback_used": response.fallback_used,
        "attempts": response.attempts,
        "request_id": response.request_id,
        "finish_reason": response.finish_reason,
        "usage_estimated": response.usage_estimated,
    }
