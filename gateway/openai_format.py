"""The wire shapes of the chat APIs: parsing OpenAI-style and native bodies into an `LLMRequest`,
and rendering answers as OpenAI chat completions / chunks or the native `LLMResponse` JSON.

Money on the OpenAI-compatible surface is a JSON number written with its exact decimal digits
(`usage.cost` in USD, `usage.credits` in credits): OpenRouter sends numbers and typed clients expect
them. The native API keeps decimal strings (`cost_usd`, `credits_charged`).

Chat completions pass every field that is not the gateway's own on to the upstream as given
(`gateway.providers.params` decides, per wire format, what is forwarded, translated or skipped).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from rest_framework import serializers

from billing.credits import format_credits
from smartspec.errors import InvalidRequest, as_api_error
from smartspec.jsonbody import StrictFloatField, StrictIntegerField, lenient_number

from .client import FORBIDDEN_FIELDS, MAX_CHOICES, PASSTHROUGH_PARAMS, LLMRequest, LLMResponse
from .providers.base import StreamDelta
from .routing import BUDGET_PRIORITIES, DATA_COLLECTION, MAX_FALLBACK_MODELS, SORTS, TASK_TYPES

SSE_DONE = b"data: [DONE]\n\n"
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
MAX_TOP_LOGPROBS = 20
# The header that names advisory parameters the answering provider left out.
DROPPED_HEADER = "X-SmartSpec-Dropped-Params"


class ProviderPreferencesInput(serializers.Serializer):
    sort = serializers.ChoiceField(choices=SORTS, required=False, allow_null=True)
    data_collection = serializers.ChoiceField(choices=DATA_COLLECTION, required=False, default="allow")
    zdr = serializers.BooleanField(required=False, allow_null=True, default=None)
    max_price = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='{"prompt": USD per 1K tokens, "completion": USD per 1K tokens}',
    )
    require_parameters = serializers.BooleanField(
        required=False, allow_null=True, help_text="OpenRouter: only upstreams that support every parameter"
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
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
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
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_CHOICES)
    logprobs = serializers.BooleanField(required=False, allow_null=True)
    top_logprobs = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_TOP_LOGPROBS
    )
    reasoning_effort = serializers.ChoiceField(choices=REASONING_EFFORTS, required=False, allow_null=True)
    metadata = serializers.DictField(required=False, allow_null=True)
    store = serializers.BooleanField(required=False, allow_null=True)
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


# --- Request validation on the hot path -------------------------------------------------------
# The serializers above document the bodies (OpenAPI). Building one per request deep-copies every
# declared field, which was a sixth of the event loop's time per call, so the bodies are checked by
# the plain functions below instead: the same rules, defaults and messages as DRF's fields (a test
# compares both on generated bodies).

_EMPTY = object()
_NULL_MESSAGE = "This field may not be null."
_RE_DECIMAL = re.compile(r"\.0*\s*$")  # IntegerField's: "1.0" is an integer, "1.2" is not
_MAX_STRING_LENGTH = 1000


class _Invalid(Exception):
    def __init__(self, detail: list[str] | dict[str, Any]):
        self.detail = detail


def _text_checks(value: str) -> str:
    errors = []
    if "\x00" in value:
        errors.append("Null characters are not allowed.")
    for char in value:
        if 0xD800 <= ord(char) <= 0xDFFF:
            errors.append(f"Surrogate characters are not allowed: U+{ord(char):X}.")
            break
    if errors:
        raise _Invalid(errors)
    return value


def _char(data: Any) -> str:
    if isinstance(data, bool) or not isinstance(data, str | int | float):
        raise _Invalid(["Not a valid string."])
    return _text_checks(str(data).strip())


def _choice(choices: tuple[str, ...]):
    by_string = {str(choice): choice for choice in choices}

    def parse(data: Any) -> str:
        try:
            return by_string[str(data)]
        except KeyError:
            raise _Invalid([f'"{data}" is not a valid choice.']) from None

    return parse


def _boolean(allow_null: bool):
    def parse(data: Any) -> bool | None:
        value = data.lower() if isinstance(data, str) else data
        try:
            if value in serializers.BooleanField.TRUE_VALUES:
                return True
            if value in serializers.BooleanField.FALSE_VALUES:
                return False
            if value in serializers.BooleanField.NULL_VALUES and allow_null:
                return None
        except TypeError:  # unhashable (a list, a dict)
            pass
        raise _Invalid(["Must be a valid boolean."])

    return parse


def _bounds(value, *, min_value, max_value):
    errors = []
    if max_value is not None and value > max_value:
        errors.append(f"Ensure this value is less than or equal to {max_value}.")
    if min_value is not None and value < min_value:
        errors.append(f"Ensure this value is greater than or equal to {min_value}.")
    if errors:
        raise _Invalid(errors)
    return value


def _number(*, min_value=None, max_value=None):
    def parse(data: Any) -> float:
        if isinstance(data, str) and len(data) > _MAX_STRING_LENGTH:
            raise _Invalid(["String value too large."])
        if lenient_number(data):
            raise _Invalid(["A valid number is required."])
        try:
            value = float(data)
        except (TypeError, ValueError):
            raise _Invalid(["A valid number is required."]) from None
        except OverflowError:
            raise _Invalid(["Integer value too large to convert to float"]) from None
        if not math.isfinite(value):
            raise _Invalid(["A valid number is required."])
        return _bounds(value, min_value=min_value, max_value=max_value)

    return parse


def _integer(*, min_value=None, max_value=None):
    def parse(data: Any) -> int:
        if isinstance(data, str) and len(data) > _MAX_STRING_LENGTH:
            raise _Invalid(["String value too large."])
        if lenient_number(data):
            raise _Invalid(["A valid integer is required."])
        try:
            value = int(_RE_DECIMAL.sub("", str(data)))
        except (TypeError, ValueError):
            raise _Invalid(["A valid integer is required."]) from None
        return _bounds(value, min_value=min_value, max_value=max_value)

    return parse


def _dictionary(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Invalid([f'Expected a dictionary of items but got type "{type(data).__name__}".'])
    return {str(key): value for key, value in data.items()}


def _list(child, *, allow_empty: bool = True, max_length: int | None = None):
    def parse(data: Any) -> list[Any]:
        if isinstance(data, str | Mapping) or not hasattr(data, "__iter__"):
            raise _Invalid([f'Expected a list of items but got type "{type(data).__name__}".'])
        if not allow_empty and len(data) == 0:
            raise _Invalid(["This list may not be empty."])
        result, errors = [], {}
        for index, item in enumerate(data):
            try:
                result.append(_run(child, item))
            except _Invalid as exc:
                errors[index] = exc.detail
        if errors:
            raise _Invalid(errors)
        if max_length is not None and len(result) > max_length:
            raise _Invalid([f"Ensure this field has no more than {max_length} elements."])
        return result

    return parse


@dataclass(frozen=True, slots=True)
class _Field:
    parse: Any
    required: bool = False
    allow_null: bool = False
    default: Any = _EMPTY
    text: bool = False  # a CharField: blank (after trimming) is refused before anything else


def _run(field: _Field, data: Any) -> Any:
    if field.text and data is not _EMPTY and (data == "" or str(data).strip() == ""):
        raise _Invalid(["This field may not be blank."])
    if data is _EMPTY:
        if field.required:
            raise _Invalid(["This field is required."])
        return field.default
    if data is None:
        if not field.allow_null:
            raise _Invalid([_NULL_MESSAGE])
        return None
    return field.parse(data)


def _object(fields: dict[str, _Field]):
    def parse(data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
            raise _Invalid({"non_field_errors": [message]})
        validated, errors = {}, {}
        for name, field in fields.items():
            try:
                value = _run(field, data.get(name, _EMPTY))
            except _Invalid as exc:
                errors[name] = exc.detail
                continue
            if value is not _EMPTY:
                validated[name] = value
        if errors:
            raise _Invalid(errors)
        return validated

    return parse


_ROUTING_FIELDS = {
    "model": _Field(_char, allow_null=True, text=True),
    "messages": _Field(_list(_Field(_dictionary), allow_empty=False), required=True),
    "task_type": _Field(_choice(TASK_TYPES), allow_null=True),
    "budget_priority": _Field(_choice(BUDGET_PRIORITIES), allow_null=True),
    "fallback_models": _Field(
        _list(_Field(_char, text=True), max_length=MAX_FALLBACK_MODELS), allow_null=True
    ),
    "use_openrouter": _Field(_boolean(False), default=True),
    "temperature": _Field(_number(min_value=0, max_value=2), allow_null=True),
    "max_tokens": _Field(_integer(min_value=1), allow_null=True),
    "stream": _Field(_boolean(False), default=False),
}
_PROVIDER_FIELDS = {
    "sort": _Field(_choice(SORTS), allow_null=True),
    "data_collection": _Field(_choice(DATA_COLLECTION), default="allow"),
    "zdr": _Field(_boolean(True), allow_null=True, default=None),
    "max_price": _Field(_dictionary, allow_null=True),
}
_chat_completion_body = _object(
    {
        **_ROUTING_FIELDS,
        "models": _Field(_list(_Field(_char, text=True), max_length=MAX_FALLBACK_MODELS), allow_null=True),
        "max_completion_tokens": _Field(_integer(min_value=1), allow_null=True),
        "n": _Field(_integer(min_value=1, max_value=MAX_CHOICES), allow_null=True),
        "logprobs": _Field(_boolean(True), allow_null=True),
        "top_logprobs": _Field(_integer(min_value=0, max_value=MAX_TOP_LOGPROBS), allow_null=True),
        "reasoning_effort": _Field(_choice(REASONING_EFFORTS), allow_null=True),
        "metadata": _Field(_dictionary, allow_null=True),
        "store": _Field(_boolean(True), allow_null=True),
        "stream_options": _Field(_dictionary, allow_null=True),
        "provider": _Field(
            _object({**_PROVIDER_FIELDS, "require_parameters": _Field(_boolean(True), allow_null=True)}),
            allow_null=True,
        ),
    }
)
# The chat completion fields the gateway itself consumes; every other field goes upstream as given.
_CHAT_OWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "task_type",
        "budget_priority",
        "fallback_models",
        "models",
        "use_openrouter",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
        "provider",
    }
)
# Declared fields that go upstream: their validated value is sent.
_CHAT_CHECKED_PARAMS = ("n", "logprobs", "top_logprobs", "reasoning_effort", "metadata", "store")
_llm_request_body = _object({**_ROUTING_FIELDS, **_PROVIDER_FIELDS})


def _validated(parse, body: dict[str, Any]) -> dict[str, Any]:
    for name in FORBIDDEN_FIELDS:
        if name in body:
            raise InvalidRequest(
                f"{name} cannot be set by clients: the gateway chooses upstreams.", code="forbidden_field"
            )
    try:
        return parse(body)
    except _Invalid as exc:
        # One readable sentence in our error shape, as the DRF APIs give.
        raise as_api_error(serializers.ValidationError(exc.detail)) from None


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in PASSTHROUGH_PARAMS if k in body}


def _chat_params(body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in body.items() if k not in _CHAT_OWN_FIELDS}
    params.update({k: data[k] for k in _CHAT_CHECKED_PARAMS if k in data})
    return params


@dataclass(slots=True)
class ParsedCompletion:
    request: LLMRequest
    include_usage: bool


def chat_completion_request(body: dict[str, Any]) -> ParsedCompletion:
    data = _validated(_chat_completion_body, body)
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
        require_parameters=provider.get("require_parameters"),
        temperature=data.get("temperature"),
        max_tokens=max_tokens,
        use_openrouter=data.get("use_openrouter", True),
        stream=data.get("stream", False),
        params=_chat_params(body, data),
        sampling_defaults=False,
    )
    return ParsedCompletion(request=request, include_usage=bool(stream_options.get("include_usage")))


def llm_request(body: dict[str, Any]) -> LLMRequest:
    data = _validated(_llm_request_body, body)
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


def _default(value: Any) -> Any:
    # Upstream numbers are read as Decimal (gateway.providers._common.load_json): written back as numbers.
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value).encode())
    return str(value)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # beyond orjson (an integer over 64 bits from an upstream's tool call)
        return _dumps_stdlib(value)


def _dumps_stdlib(value: Any) -> bytes:
    """json.dumps with `orjson.Fragment`s (exact decimal numbers) written as they are."""
    fragments: list[bytes] = []

    def default(item):
        if not isinstance(item, orjson.Fragment):
            item = _default(item)
        if isinstance(item, orjson.Fragment):
            fragments.append(orjson.dumps(item))
            return f"\x00fragment{len(fragments) - 1}\x00"
        return item

    text = json.dumps(value, separators=(",", ":"), default=default).encode()
    for index, raw in enumerate(fragments):
        text = text.replace(f'"\\u0000fragment{index}\\u0000"'.encode(), raw)
    return text


def json_body(payload: dict[str, Any]) -> bytes:
    """A whole JSON answer (money as exact numbers)."""
    return _dumps(payload)


def number(text: str) -> orjson.Fragment:
    """A decimal string written into JSON as a number with exactly these digits."""
    return orjson.Fragment(text.encode())


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


def usd(value: Decimal) -> str:
    """USD as a plain decimal string without trailing zeros ("0.00015")."""
    return f"{value.normalize():f}"


def money(response: LLMResponse) -> dict[str, orjson.Fragment]:
    """`cost` (USD) and `credits` as JSON numbers with their exact digits."""
    return {
        "cost": number(usd(response.cost_usd)),
        "credits": number(format_credits(response.credits_charged)),
    }


def _usage(response: LLMResponse) -> dict[str, Any]:
    details = response.usage_details
    return {
        **response.usage,
        "prompt_tokens_details": {
            "cached_tokens": details.get("cached_tokens", 0),
            # OpenRouter's name: of prompt_tokens, written to the prompt cache.
            "cache_write_tokens": details.get("cache_write_tokens", 0),
        },
        "completion_tokens_details": {"reasoning_tokens": details.get("reasoning_tokens", 0)},
        **money(response),
    }


def completion(response: LLMResponse) -> dict[str, Any]:
    if response.choices:
        choices = [
            {
                "index": choice.get("index", index),
                "message": choice.get("message") or {"role": "assistant", "content": ""},
                "finish_reason": choice.get("finish_reason") or "stop",
                "logprobs": choice.get("logprobs"),
            }
            for index, choice in enumerate(response.choices)
        ]
    else:
        message = response.message or {"role": "assistant", "content": response.content}
        choices = [
            {
                "index": 0,
                "message": message,
                "finish_reason": response.finish_reason or "stop",
                "logprobs": None,
            }
        ]
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": now(),
        "model": response.model,
        "provider": response.provider,
        "choices": choices,
        "usage": _usage(response),
        "route": response.route,
        "routing_reason": response.routing_reason,
    }


def dropped_header(names: list[str]) -> dict[str, str]:
    """The response header naming advisory parameters the answering provider left out."""
    return {DROPPED_HEADER: ", ".join(names)} if names else {}


def _chunk(stream, created: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{stream.prepared.request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": stream.model,
        "provider": stream.provider,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


_CHUNK_TAIL_NULL = b',"finish_reason":null,"logprobs":null}]}\n\n'


class CompletionChunks:
    """One stream's OpenAI chunks as SSE events. Everything before the delta (id, created, model,
    provider) is the same in every chunk: it is serialized once, again only if the answering model
    changes, and each delta appends its own bytes."""

    def __init__(self, stream, created: int):
        self._stream = stream
        self._created = created
        self._for: tuple[str, str] | None = None
        self._head = b""
        self._started: set[int] = set()  # choices whose first piece (with the role) went out

    def _prefix(self) -> bytes:
        answering = (self._stream.model, self._stream.provider)
        if answering != self._for:
            head = _dumps(_chunk(self._stream, self._created, {}, None))
            # `..."choices":[{"index":0,"delta":` : the chunk up to where each delta differs.
            self._head = b"data: " + head[: head.index(b'"delta":') + len(b'"delta":')]
            self._for = answering
        return self._head

    def event(self, delta: StreamDelta, *, first: bool) -> bytes | None:
        """The event for one upstream delta; None for a delta with nothing for the client (usage only)."""
        if delta.index or delta.logprobs is not None:
            return self._full_event(delta)
        if delta.content and not first and not delta.tool_calls and not delta.finish_reason:
            # The common case: one piece of text.
            return self._prefix() + b'{"content":' + _dumps(delta.content) + b"}" + _CHUNK_TAIL_NULL
        body: dict[str, Any] = {"role": "assistant"} if first else {}
        if delta.content:
            body["content"] = delta.content
        if delta.tool_calls:
            body["tool_calls"] = delta.tool_calls
        if not body and not delta.finish_reason:
            return None
        self._started.add(0)
        if delta.finish_reason is None:
            return self._prefix() + _dumps(body) + _CHUNK_TAIL_NULL
        return (
            self._prefix()
            + _dumps(body)
            + b',"finish_reason":'
            + _dumps(delta.finish_reason)
            + b',"logprobs":null}]}\n\n'
        )

    def _full_event(self, delta: StreamDelta) -> bytes | None:
        """A piece of another choice than the first (`n` > 1), or one with logprobs."""
        if not (delta.content or delta.tool_calls or delta.finish_reason or delta.logprobs is not None):
            return None
        body: dict[str, Any] = {}
        if delta.index not in self._started:
            self._started.add(delta.index)
            body["role"] = "assistant"
        if delta.content:
            body["content"] = delta.content
        if delta.tool_calls:
            body["tool_calls"] = delta.tool_calls
        chunk = _chunk(self._stream, self._created, body, delta.finish_reason)
        chunk["choices"][0].update(index=delta.index, logprobs=delta.logprobs)
        return sse(chunk)


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
        "route": response.route,
        "routing_reason": response.routing_reason,
    }


# --- Embeddings (`POST /v1/embeddings`) -------------------------------------------------------
ENCODING_FORMATS = ("float", "base64")


class EmbeddingsInput(serializers.Serializer):
    """OpenAI's embeddings request plus the gateway's routing extensions."""

    model = serializers.CharField(help_text="an embedding model id, e.g. openai/text-embedding-3-small")
    input = serializers.JSONField(help_text="a string, a list of strings, a token array or a list of them")
    dimensions = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    encoding_format = serializers.ChoiceField(choices=ENCODING_FORMATS, required=False, default="float")
    user = serializers.CharField(required=False, allow_null=True)
    fallback_models = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True, max_length=MAX_FALLBACK_MODELS
    )
    use_openrouter = serializers.BooleanField(required=False, default=True)
    provider = ProviderPreferencesInput(required=False, allow_null=True)


@dataclass(slots=True)
class ParsedEmbeddings:
    request: LLMRequest
    encoding_format: str


def embeddings_request(body: dict[str, Any]) -> ParsedEmbeddings:
    for name in FORBIDDEN_FIELDS:
        if name in body:
            raise InvalidRequest(
                f"{name} cannot be set by clients: the gateway chooses upstreams.", code="forbidden_field"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model is required: an embedding model id.", code="invalid_model")
    if "input" not in body:
        raise InvalidRequest("input is required.", code="invalid_input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODING_FORMATS:
        raise InvalidRequest("encoding_format must be float or base64.", code="invalid_encoding_format")
    provider = body.get("provider") or {}
    if not isinstance(provider, dict):
        raise InvalidRequest("provider must be an object.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user must be a string.")
    request = LLMRequest(
        messages=[],
        model=model,
        fallback_models=body.get("fallback_models"),
        sort=provider.get("sort"),
        data_collection=provider.get("data_collection") or "allow",
        zdr=provider.get("zdr"),
        max_price=provider.get("max_price"),
        require_parameters=provider.get("require_parameters"),
        use_openrouter=body.get("use_openrouter", True),
        params={"dimensions": body.get("dimensions"), "user": user},
        kind="embeddings",
        input=body["input"],
        sampling_defaults=False,
    )
    return ParsedEmbeddings(request=request, encoding_format=encoding)


def _base64_vector(vector: list[float]) -> str:
    import base64
    import struct

    # OpenAI's base64 is the little-endian float32 array.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_response(response: LLMResponse, *, encoding_format: str) -> dict[str, Any]:
    vectors = response.embeddings or []
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _base64_vector(vector) if encoding_format == "base64" else vector,
            }
            for index, vector in enumerate(vectors)
        ],
        "model": response.model,
        "provider": response.provider,
        "usage": {
            "prompt_tokens": response.usage["prompt_tokens"],
            "total_tokens": response.usage["prompt_tokens"],
            **money(response),
        },
    }
