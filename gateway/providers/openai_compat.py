"""The OpenAI Chat Completions wire format: OpenAI, OpenRouter, Groq, Z.AI and Ollama's `/v1`.

Requests go to `{base_url}/chat/completions` with `Authorization: Bearer`. Every
stream asks for `stream_options.include_usage`, so its last chunk (choices may be
empty) carries the usage. OpenRouter requests also carry `usage.include` (its docs
now call it a no-op, kept for OpenRouter-compatible proxies that still honour it),
the site headers from the config, and `request.extra_body` as the router built it
(`provider`, `models`). OpenRouter's `usage.cost` is read as an exact Decimal and its
`provider` field names the upstream that answered. OpenRouter may report a failure
with HTTP 200 (an `error` object in the body or in a stream chunk): that is a failure.
"""

from __future__ import annotations

from typing import Any

from gateway.providers._common import (
    error_for_status,
    load_json,
    make_usage,
    malformed,
    model_gone,
    stream_incomplete,
    tag,
)
from gateway.providers.base import (
    SHAPE_OPENAI,
    SHAPE_OPENROUTER,
    WIRE_OPENAI_COMPAT,
    ChatRequest,
    ChatResult,
    ProviderConfig,
    StreamDelta,
    UpstreamRequest,
    Usage,
)
from smartspec.errors import UpstreamBadRequest, UpstreamError, UpstreamUnavailable

OPENROUTER = "openrouter"


def _details(raw: dict[str, Any], key: str) -> dict[str, Any]:
    details = raw.get(key)
    return details if isinstance(details, dict) else {}


def _usage(data: dict[str, Any], provider: str) -> Usage | None:
    """OpenAI's usage: `prompt_tokens_details.cached_tokens` are inside `prompt_tokens` (so are
    OpenRouter's `cache_write_tokens`), `completion_tokens_details.reasoning_tokens` inside
    `completion_tokens`; OpenRouter adds `cost`, its charge in USD."""
    raw = data.get("usage")
    if not isinstance(raw, dict):
        # Groq's older streams put the final usage under `x_groq`.
        x_groq = data.get("x_groq")
        raw = x_groq.get("usage") if isinstance(x_groq, dict) else None
    if not isinstance(raw, dict):
        return None
    prompt_details = _details(raw, "prompt_tokens_details")
    return make_usage(
        raw.get("prompt_tokens"),
        raw.get("completion_tokens"),
        raw.get("cost"),
        cached=prompt_details.get("cached_tokens"),
        cache_write_5m=prompt_details.get("cache_write_tokens"),
        reasoning=_details(raw, "completion_tokens_details").get("reasoning_tokens"),
        shape=SHAPE_OPENROUTER if provider == OPENROUTER else SHAPE_OPENAI,
    )


def _body_error(error: Any, provider: str) -> UpstreamError:
    """The typed error for an `error` object that came with HTTP 200 (OpenRouter does this)."""
    if not isinstance(error, dict):
        return malformed(provider)
    code = error.get("code")
    if isinstance(code, int) and 400 <= code < 600:
        return error_for_status(code, provider=provider)
    return tag(UpstreamUnavailable(f"{provider} reported an error while answering."), provider, 200, None)


def _reasoning_text(part: dict[str, Any]) -> str:
    """A delta's or message's reasoning text: OpenRouter's `reasoning`, or `reasoning_content` (Z.AI,
    DeepSeek-style servers). Output the model produced, which the Messages face shows as thinking."""
    for name in ("reasoning", "reasoning_content"):
        value = part.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


class OpenAICompatStreamParser:
    def __init__(self, config: ProviderConfig):
        self.provider = config.name
        self.done = False  # saw [DONE]
        self.finished = False  # saw a finish_reason

    def feed(self, event: str | None, data: str) -> list[StreamDelta]:
        data = data.strip()
        if self.done or not data:
            return []
        if data == "[DONE]":
            self.done = True
            return []
        chunk = load_json(data, self.provider)
        if not isinstance(chunk, dict):
            raise malformed(self.provider)
        if chunk.get("error"):
            raise _body_error(chunk["error"], self.provider)
        model, provider = chunk.get("model") or None, chunk.get("provider") or self.provider
        upstream_id = str(chunk.get("id") or "")
        deltas = []
        for position, choice in enumerate(chunk.get("choices") or []):
            if not isinstance(choice, dict):
                raise malformed(self.provider)
            part = choice.get("delta") or {}
            if not isinstance(part, dict):
                raise malformed(self.provider)
            index = choice.get("index")
            delta = StreamDelta(
                model=model,
                provider=provider,
                index=index if isinstance(index, int) and not isinstance(index, bool) else position,
                content=part.get("content") or "",
                tool_calls=part.get("tool_calls") or None,
                finish_reason=choice.get("finish_reason") or None,
                logprobs=choice.get("logprobs") or None,
                upstream_id=upstream_id,
                thinking=_reasoning_text(part),
            )
            if delta.finish_reason == "error":
                raise tag(
                    UpstreamUnavailable(f"{self.provider} stopped the stream with an error."),
                    self.provider,
                    200,
                    "error",
                )
            if delta.finish_reason:
                self.finished = True
            if delta.content or delta.tool_calls or delta.finish_reason or delta.logprobs or delta.thinking:
                deltas.append(delta)
        usage = _usage(chunk, self.provider)
        if usage is not None:
            if deltas:
                deltas[-1].usage = usage
            else:
                deltas.append(
                    StreamDelta(model=model, provider=provider, usage=usage, upstream_id=upstream_id)
                )
        return deltas  # empty for a role-only opening chunk: nothing produced yet

    def finish(self) -> list[StreamDelta]:
        if not (self.done or self.finished):
            raise stream_incomplete(self.provider)
        return []


class OpenAICompatAdapter:
    wire = WIRE_OPENAI_COMPAT

    def build_request(self, request: ChatRequest, config: ProviderConfig) -> UpstreamRequest:
        body: dict[str, Any] = dict(request.params)
        body.update(model=request.model, messages=request.messages, stream=request.stream)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            # OpenAI's reasoning models refuse `max_tokens`; the newer name works for every OpenAI model.
            body["max_completion_tokens" if config.name == "openai" else "max_tokens"] = request.max_tokens
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = request.stop
        if request.stream:
            body["stream_options"] = {"include_usage": True}
        if config.name == OPENROUTER:
            body["usage"] = {"include": True}
        body.update(request.extra_body)
        headers = {"accept": "text/event-stream" if request.stream else "application/json"}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        headers.update(config.headers)
        return UpstreamRequest(
            method="POST", url=f"{config.base_url.rstrip('/')}/chat/completions", headers=headers, json=body
        )

    def parse_response(self, body: bytes, config: ProviderConfig) -> ChatResult:
        data = load_json(body, config.name)
        if not isinstance(data, dict):
            raise malformed(config.name)
        if data.get("error"):
            raise _body_error(data["error"], config.name)
        try:
            raw_choices = data["choices"]
            choice = raw_choices[0]
            message = choice["message"]
            content = message.get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise malformed(config.name) from None
        if not isinstance(content, str) or not isinstance(raw_choices, list):
            raise malformed(config.name)
        finish_reason = choice.get("finish_reason")
        if finish_reason == "error":
            raise tag(
                UpstreamUnavailable(f"{config.name} reported an error while answering."), config.name, 200
            )
        choices = None
        if len(raw_choices) > 1 or choice.get("logprobs"):
            choices = []
            for position, item in enumerate(raw_choices):
                if not isinstance(item, dict) or not isinstance(item.get("message"), dict):
                    raise malformed(config.name)
                index = item.get("index")
                choices.append(
                    {
                        "index": index
                        if isinstance(index, int) and not isinstance(index, bool)
                        else position,
                        "message": item["message"],
                        "finish_reason": item.get("finish_reason") or "stop",
                        "logprobs": item.get("logprobs"),
                    }
                )
        return ChatResult(
            content=content,
            model=str(data.get("model") or ""),
            provider=str(data.get("provider") or config.name),
            usage=_usage(data, config.name),
            finish_reason=finish_reason,
            upstream_id=str(data.get("id") or ""),
            message=message,
            choices=choices,
        )

    def stream_parser(self, config: ProviderConfig) -> OpenAICompatStreamParser:
        return OpenAICompatStreamParser(config)

    def map_error(
        self, status: int, body: bytes, headers: dict[str, str], config: ProviderConfig | None = None
    ) -> UpstreamError:
        """`{"error": {"message", "code"|"type", "metadata"?}}` -> typed error; only the code travels."""
        return map_error(status, body, headers, config.name if config else "the provider")


NOT_A_VALID_MODEL = "is not a valid model ID"


def map_error(status: int, body: bytes, headers: dict[str, str], provider: str) -> UpstreamError:
    code = None
    moderation = False
    gone = False
    try:
        error = load_json(body, provider).get("error")
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            metadata = error.get("metadata")
            moderation = isinstance(metadata, dict) and "flagged_input" in metadata
            message = error.get("message")
            # OpenAI (and Groq): code `model_not_found`; OpenRouter: 400 "<id> is not a valid model ID".
            gone = code == "model_not_found" or (
                status == 400 and isinstance(message, str) and message.endswith(NOT_A_VALID_MODEL)
            )
    except (UpstreamError, AttributeError):
        pass  # a non-JSON error page (a proxy's HTML) says nothing beyond its status
    if gone and status in (400, 404):
        return model_gone(status, provider=provider, code=code)
    if status == 403 and moderation:
        # OpenRouter's moderation refused the input itself: another route would refuse it too.
        return tag(
            UpstreamBadRequest(f"{provider} flagged the input (HTTP 403).", code="content_filter"),
            provider,
            status,
            "content_filter",
        )
    return error_for_status(status, provider=provider, headers=headers, code=code)


adapter = OpenAICompatAdapter()
