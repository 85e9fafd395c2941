"""Anthropic's Messages API (`POST {base}/v1/messages`).

OpenAI-style messages are translated: system/developer messages are lifted into the
top-level `system`, text and image parts become content blocks, assistant tool calls
become `tool_use` blocks and `tool` messages `tool_result` blocks. `max_tokens` is
always sent (Anthropic requires it). Answers come back as OpenAI-shaped results:
text blocks joined, `tool_use` blocks as `tool_calls`, `stop_reason` as
`finish_reason`, and input tokens (cache reads and writes included) as prompt tokens, with the
reads and the 5-minute and 1-hour writes kept as usage details for their own prices.
A stream's input tokens arrive in `message_start`, its output tokens in `message_delta`.

A call that came in on the Messages API (`ChatRequest.anthropic`) is sent natively: the caller's own
body, with only `model`, `max_tokens` and `stream` set by the gateway and its `anthropic-beta` names
passed on; the answer keeps its content blocks (`ChatResult.blocks`) and a stream its thinking pieces.
`OpenRouterMessagesAdapter` sends the same native body to OpenRouter's Anthropic-compatible
`POST {base}/messages` (Bearer auth; our `models` fallbacks as its `fallbacks`), whose answers are
Anthropic-shaped with OpenRouter's `usage.cost`.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.providers import openai_compat
from gateway.providers._common import (
    error_for_status,
    make_usage,
    malformed,
    model_gone,
    split_data_url,
    stream_incomplete,
    text_of,
    token_count,
)
from gateway.providers.base import (
    SHAPE_ANTHROPIC,
    WIRE_ANTHROPIC,
    ChatRequest,
    ChatResult,
    ProviderConfig,
    StreamDelta,
    UpstreamRequest,
    Usage,
)
from gateway.providers.params import anthropic_thinking_budget
from gateway.providers.parts import arguments_object
from smartspec.errors import UpstreamError

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Error `type` of a body or a stream's `error` event -> the HTTP status it stands for.
ERROR_TYPES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _content_blocks(content: Any) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            blocks.append({"type": "text", "text": str(part)})
        elif part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            inline = split_data_url(url)
            source = (
                {"type": "base64", "media_type": inline[0], "data": inline[1]}
                if inline
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        else:
            blocks.append(part)  # already an Anthropic block (document, ...): passed through
    return blocks


def _tool_use_blocks(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks = []
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = arguments_object(function.get("arguments"))
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}
        )
    return blocks


def _tools(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tools = params.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (tool.get("function") or {}).get("name"),
                "description": (tool.get("function") or {}).get("description", ""),
                "input_schema": (tool.get("function") or {}).get("parameters") or {"type": "object"},
            }
            for tool in tools
            if isinstance(tool, dict)
        ]
    choice = params.get("tool_choice")
    if choice in ("auto", "none"):
        out["tool_choice"] = {"type": choice}
    elif choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        out["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    return out


def _translate_params(body: dict[str, Any], params: dict[str, Any]) -> None:
    """The OpenAI parameters Anthropic has a field for (gateway.providers.params lists the rest)."""
    budget = anthropic_thinking_budget(params, body["max_tokens"])
    if budget is not None and budget > 0:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        # Extended thinking refuses temperature and top_k changes (the fit names them dropped).
        body.pop("temperature", None)
    elif params.get("top_k") is not None:
        body["top_k"] = params["top_k"]
    if params.get("user"):
        body["metadata"] = {"user_id": str(params["user"])}
    if params.get("parallel_tool_calls") is False and body.get("tools"):
        body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}


def json_error(body: bytes) -> Any:
    """The `error` object of an error body, or None."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    return data.get("error") if isinstance(data, dict) else None


def _native_body(request: ChatRequest) -> dict[str, Any]:
    """The caller's Messages body as the upstream gets it: the gateway sets the model (the provider's
    own name), `max_tokens` (validated: the hold is priced at it) and `stream`."""
    body = dict(request.anthropic or {})
    body["model"] = request.model
    body["max_tokens"] = request.max_tokens or DEFAULT_MAX_TOKENS
    body.pop("stream", None)
    if request.stream:
        body["stream"] = True
    return body


def _usage(raw: Any) -> Usage | None:
    """Anthropic counts cache reads (`cache_read_input_tokens`) and writes
    (`cache_creation_input_tokens`, split by TTL in `cache_creation.ephemeral_5m_input_tokens` /
    `ephemeral_1h_input_tokens`) outside `input_tokens`: all are input, so they join the prompt
    total and stay apart as details. Thinking is output and is counted in `output_tokens`."""
    if not isinstance(raw, dict):
        return None
    fresh = token_count(raw.get("input_tokens"))
    if fresh is None:
        return None
    read = token_count(raw.get("cache_read_input_tokens")) or 0
    written = token_count(raw.get("cache_creation_input_tokens")) or 0
    split = raw.get("cache_creation") if isinstance(raw.get("cache_creation"), dict) else {}
    written_1h = min(token_count(split.get("ephemeral_1h_input_tokens")) or 0, written)
    return make_usage(
        fresh + read + written,
        raw.get("output_tokens"),
        # OpenRouter's Anthropic-compatible endpoint adds its own figure, as on chat completions.
        raw.get("cost"),
        cached=read,
        # Writes the split does not attribute to the hour are the default 5-minute ones.
        cache_write_5m=written - written_1h,
        cache_write_1h=written_1h,
        shape=SHAPE_ANTHROPIC,
    )


def _stop(fields: Any) -> dict[str, Any] | None:
    """Anthropic's own `stop_reason` and `stop_sequence`, when it gave a reason."""
    if not isinstance(fields, dict) or not isinstance(fields.get("stop_reason"), str):
        return None
    sequence = fields.get("stop_sequence")
    return {
        "stop_reason": fields["stop_reason"],
        "stop_sequence": sequence if isinstance(sequence, str) else None,
    }


def _error_from_type(error: Any, provider: str, status: int | None = None) -> UpstreamError:
    kind = error.get("type") if isinstance(error, dict) else None
    mapped = ERROR_TYPES.get(kind) if isinstance(kind, str) else None
    return error_for_status(status or mapped or 500, provider=provider, code=kind)


class AnthropicStreamParser:
    def __init__(self, config: ProviderConfig):
        self.provider = config.name
        self.model: str | None = None
        self.upstream_id = ""
        self.input_usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # content block index -> OpenAI tool_calls index
        self.done = False

    def feed(self, event: str | None, data: str) -> list[StreamDelta]:
        if self.done:
            return []
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            raise malformed(self.provider) from None
        if not isinstance(payload, dict):
            raise malformed(self.provider)
        kind = payload.get("type") or event
        if kind == "message_start":
            message = payload.get("message") or {}
            self.model = message.get("model")
            self.upstream_id = str(message.get("id") or "")
            self.input_usage = message.get("usage") or {}
            return []
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(payload.get("index", 0), len(self.tool_index))
                call = {"index": index, "id": block.get("id"), "type": "function"}
                call["function"] = {"name": block.get("name"), "arguments": ""}
                return [self._delta(tool_calls=[call])]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._delta(content=delta["text"])]
            if delta.get("type") == "input_json_delta" and payload.get("index") in self.tool_index:
                call = {"index": self.tool_index[payload["index"]], "function": {}}
                call["function"]["arguments"] = delta.get("partial_json") or ""
                return [self._delta(tool_calls=[call])]
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return [self._delta(thinking=str(delta["thinking"]))]
            if delta.get("type") == "signature_delta" and delta.get("signature"):
                return [self._delta(signature=str(delta["signature"]))]
            return []  # citations and delta types added later: not part of the answer text
        if kind == "message_delta":
            usage = payload.get("usage") or {}
            # Newer API versions repeat the cumulative input counts here; otherwise message_start's stand.
            merged = {**self.input_usage, **{k: v for k, v in usage.items() if v is not None}}
            stop_reason = (payload.get("delta") or {}).get("stop_reason")
            return [
                self._delta(
                    finish_reason=FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None,
                    usage=_usage(merged),
                    stop=_stop(payload.get("delta")),
                )
            ]
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error":
            raise _error_from_type(payload.get("error"), self.provider)
        return []  # ping, content_block_stop, and event types added later

    def _delta(self, **fields: Any) -> StreamDelta:
        return StreamDelta(model=self.model, provider=self.provider, upstream_id=self.upstream_id, **fields)

    def finish(self) -> list[StreamDelta]:
        if not self.done:
            raise stream_incomplete(self.provider)
        return []


class AnthropicAdapter:
    wire = WIRE_ANTHROPIC

    def headers(self, request: ChatRequest, config: ProviderConfig) -> dict[str, str]:
        headers = {
            "x-api-key": config.api_key,
            "anthropic-version": API_VERSION,
            "accept": "text/event-stream" if request.stream else "application/json",
        }
        if request.anthropic is not None and request.anthropic_beta:
            headers["anthropic-beta"] = ",".join(request.anthropic_beta)
        headers.update(config.headers)
        return headers

    def url(self, config: ProviderConfig, path: str = "messages") -> str:
        return f"{config.base_url.rstrip('/')}/v1/{path}"

    def native_body(self, request: ChatRequest) -> dict[str, Any]:
        return _native_body(request)

    def build_request(self, request: ChatRequest, config: ProviderConfig) -> UpstreamRequest:
        if request.anthropic is not None:
            return UpstreamRequest(
                method="POST",
                url=self.url(config),
                headers=self.headers(request, config),
                json=self.native_body(request),
            )
        system: list[str] = []
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            role = message.get("role")
            if role in ("system", "developer"):
                system.append(text_of(message.get("content")))
            elif role == "assistant":
                content = _content_blocks(message.get("content"))
                if message.get("tool_calls"):
                    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
                    content = [b for b in blocks if b.get("text") != ""]
                    content += _tool_use_blocks(message["tool_calls"])
                messages.append({"role": "assistant", "content": content})
            elif role == "tool":
                result = {
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id"),
                    "content": text_of(message.get("content")),
                }
                messages.append({"role": "user", "content": [result]})
            else:
                messages.append({"role": "user", "content": _content_blocks(message.get("content"))})
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = "\n\n".join(part for part in system if part)
        if request.temperature is not None:
            # Anthropic's scale stops at 1; OpenAI's goes to 2. The closest it can do beats a refusal.
            body["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.stream:
            body["stream"] = True
        body.update(_tools(request.params))
        _translate_params(body, request.params)
        body.update(request.extra_body)
        return UpstreamRequest(
            method="POST", url=self.url(config), headers=self.headers(request, config), json=body
        )

    def count_tokens_request(self, request: ChatRequest, config: ProviderConfig) -> UpstreamRequest:
        """Anthropic's `POST /v1/messages/count_tokens` for a native body (free upstream too)."""
        body = {
            k: v
            for k, v in self.native_body(request).items()
            if k in ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")
        }
        headers = {**self.headers(request, config), "accept": "application/json"}
        return UpstreamRequest(
            method="POST", url=self.url(config, "messages/count_tokens"), headers=headers, json=body
        )

    def parse_count(self, body: bytes, config: ProviderConfig) -> int:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise malformed(config.name) from None
        count = token_count(data.get("input_tokens")) if isinstance(data, dict) else None
        if count is None:
            raise malformed(config.name)
        return count

    def parse_response(self, body: bytes, config: ProviderConfig) -> ChatResult:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise malformed(config.name) from None
        if not isinstance(data, dict):
            raise malformed(config.name)
        if data.get("type") == "error":
            raise _error_from_type(data.get("error"), config.name)
        blocks = data.get("content")
        if data.get("type") != "message" or not isinstance(blocks, list):
            raise malformed(config.name)
        text = "".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        tool_calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
            }
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        stop_reason = data.get("stop_reason")
        return ChatResult(
            content=text,
            model=str(data.get("model") or ""),
            provider=config.name,
            usage=_usage(data.get("usage")),
            finish_reason=FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None,
            upstream_id=str(data.get("id") or ""),
            message=message,
            blocks=[b for b in blocks if isinstance(b, dict)],
            stop=_stop(data),
        )

    def stream_parser(self, config: ProviderConfig) -> AnthropicStreamParser:
        return AnthropicStreamParser(config)

    def map_error(
        self, status: int, body: bytes, headers: dict[str, str], config: ProviderConfig | None = None
    ) -> UpstreamError:
        """`{"type": "error", "error": {"type", "message"}}`; the status decides, the type is the code."""
        provider = config.name if config else "anthropic"
        kind = None
        try:
            error = json.loads(body).get("error")
            kind = error.get("type") if isinstance(error, dict) else None
        except (ValueError, RecursionError, UnicodeDecodeError, AttributeError):
            pass
        if status == 404 and kind == "not_found_error":
            return model_gone(status, provider=provider, code=kind)
        return error_for_status(status, provider=provider, headers=headers, code=kind)


class OpenRouterMessagesAdapter(AnthropicAdapter):
    """OpenRouter's Anthropic-compatible Messages endpoint, for native calls to Claude models."""

    def headers(self, request: ChatRequest, config: ProviderConfig) -> dict[str, str]:
        headers = super().headers(request, config)
        del headers["x-api-key"]
        headers["authorization"] = f"Bearer {config.api_key}"
        return headers

    def url(self, config: ProviderConfig, path: str = "messages") -> str:
        return f"{config.base_url.rstrip('/')}/{path}"

    def native_body(self, request: ChatRequest) -> dict[str, Any]:
        body = _native_body(request)
        extra = request.extra_body
        # OpenRouter's `models` chain (this model first) is its Messages endpoint's `fallbacks`.
        chain = [m for m in extra.get("models") or [] if m != request.model]
        if chain:
            body["fallbacks"] = [{"model": m} for m in chain]
        if extra.get("provider"):
            body["provider"] = extra["provider"]
        return body

    def map_error(
        self, status: int, body: bytes, headers: dict[str, str], config: ProviderConfig | None = None
    ) -> UpstreamError:
        """Anthropic's error shape, or OpenRouter's own (its "not a valid model ID", its moderation)."""
        error = json_error(body)
        if isinstance(error, dict) and isinstance(error.get("type"), str) and "code" not in error:
            return super().map_error(status, body, headers, config)
        return openai_compat.map_error(status, body, headers, config.name if config else "openrouter")


adapter = AnthropicAdapter()
openrouter_messages_adapter = OpenRouterMessagesAdapter()
