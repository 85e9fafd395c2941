"""Google's Gemini API: `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.

OpenAI-style messages become `contents` with roles `user`/`model`; system messages
become `systemInstruction`; sampling options go into `generationConfig`. The answer is
the text parts of the first candidate (thought summaries left out); `usageMetadata`
gives the usage, with thinking tokens counted as output since they are billed as such.
The key travels in the `x-goog-api-key` header, never in the URL.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import quote

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
    SHAPE_GEMINI,
    WIRE_GEMINI,
    ChatRequest,
    ChatResult,
    ProviderConfig,
    StreamDelta,
    UpstreamRequest,
    Usage,
)
from gateway.providers.params import gemini_thinking_budget
from gateway.providers.parts import arguments_object
from smartspec.errors import UpstreamError, UpstreamRateLimited

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

# `error.status` of a Google API error -> the HTTP status it stands for (a stream's error has no status line).
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"text": content or ""}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            parts.append({"text": str(part)})
        elif part.get("type") == "text":
            parts.append({"text": part.get("text") or ""})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            inline = split_data_url(url)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"fileUri": url}})
    return parts or [{"text": ""}]


def _tools(params: dict[str, Any]) -> dict[str, Any]:
    tools = [t.get("function") or {} for t in params.get("tools") or [] if isinstance(t, dict)]
    if not tools:
        return {}
    declarations = []
    for function in tools:
        declaration = {"name": function.get("name"), "description": function.get("description", "")}
        if function.get("parameters"):
            declaration["parameters"] = function["parameters"]
        declarations.append(declaration)
    return {"tools": [{"functionDeclarations": declarations}], **_tool_config(params.get("tool_choice"))}


def _generation_params(params: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI parameters that `generationConfig` has a field for."""
    out: dict[str, Any] = {}
    for name, field in (
        ("n", "candidateCount"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if params.get(name) is not None:
            out[field] = params[name]
    budget = gemini_thinking_budget(params)
    if budget is not None:
        out["thinkingConfig"] = {"thinkingBudget": budget}
    response_format = params.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            out["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        if isinstance(schema, dict):
            out["responseJsonSchema"] = schema
    return out


def _tool_config(choice: Any) -> dict[str, Any]:
    """OpenAI's `tool_choice` as Gemini's `toolConfig`."""
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"toolConfig": {"functionCallingConfig": {"mode": modes[choice]}}}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if isinstance(name, str) and name:
        return {"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}}
    return {}


def _usage(raw: Any) -> Usage | None:
    """`cachedContentTokenCount` is part of `promptTokenCount`; `thoughtsTokenCount` is not part of
    `candidatesTokenCount` but is billed as output, so it joins the completion total as reasoning."""
    if not isinstance(raw, dict):
        return None
    prompt = token_count(raw.get("promptTokenCount"))
    if prompt is not None:
        prompt += token_count(raw.get("toolUsePromptTokenCount")) or 0
    completion = token_count(raw.get("candidatesTokenCount") or 0)
    thoughts = token_count(raw.get("thoughtsTokenCount")) or 0
    if completion is not None:
        completion += thoughts
    return make_usage(
        prompt,
        completion,
        cached=raw.get("cachedContentTokenCount"),
        reasoning=thoughts,
        shape=SHAPE_GEMINI,
    )


def _error(error: Any, provider: str, status: int | None = None, headers: dict[str, str] | None = None):
    """`{"error": {"code", "message", "status"}}` -> typed error; the status word is the code shown."""
    word = error.get("status") if isinstance(error, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, list) and any(
        isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        # Google answers a bad key with 400 INVALID_ARGUMENT: it is our credentials, not the request.
        status, word = 401, "API_KEY_INVALID"
    if status is None:
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else STATUS_CODES.get(word, 500)
    if status == 404 and word == "NOT_FOUND":
        return model_gone(status, provider=provider, code=word)
    mapped = error_for_status(status, provider=provider, headers=headers, code=word)
    if isinstance(mapped, UpstreamRateLimited) and mapped.retry_after is None and isinstance(details, list):
        # Google puts the wait in a RetryInfo detail ("32s") rather than a Retry-After header.
        for detail in details:
            delay = detail.get("retryDelay") if isinstance(detail, dict) else None
            if isinstance(delay, str) and re.fullmatch(r"\d+(\.\d+)?s", delay):
                mapped.retry_after = math.ceil(float(delay[:-1]))
    return mapped


def _candidates(
    data: dict[str, Any], provider: str
) -> list[tuple[int, str, list[dict[str, Any]], str | None]]:
    """(index, text, tool calls, OpenAI finish reason) of every candidate (`candidateCount` > 1)."""
    candidates = data.get("candidates")
    if not candidates:
        if (data.get("promptFeedback") or {}).get("blockReason"):
            return [(0, "", [], "content_filter")]
        return [(0, "", [], None)]
    if not isinstance(candidates, list):
        raise malformed(provider)
    out = []
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            raise malformed(provider)
        parts = (candidate.get("content") or {}).get("parts") or []
        if not isinstance(parts, list):
            raise malformed(provider)
        text = "".join(
            p.get("text") or "" for p in parts if isinstance(p, dict) and "text" in p and not p.get("thought")
        )
        calls = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {
                    "name": p["functionCall"].get("name"),
                    "arguments": json.dumps(p["functionCall"].get("args") or {}),
                },
            }
            for index, p in enumerate(parts)
            if isinstance(p, dict) and isinstance(p.get("functionCall"), dict)
        ]
        reason = candidate.get("finishReason")
        finish = None
        if reason:
            finish = "tool_calls" if calls else FINISH_REASONS.get(reason, "stop")
        index = candidate.get("index")
        out.append(
            (
                index if isinstance(index, int) and not isinstance(index, bool) else position,
                text,
                calls,
                finish,
            )
        )
    return out


def _load(data: bytes | str, provider: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise malformed(provider) from None
    if not isinstance(payload, dict):
        raise malformed(provider)
    if payload.get("error"):
        raise _error(payload["error"], provider)
    return payload


class GeminiStreamParser:
    def __init__(self, config: ProviderConfig):
        self.provider = config.name
        self.finished = False
        self.tool_count = 0

    def feed(self, event: str | None, data: str) -> list[StreamDelta]:
        if not data.strip():
            return []
        chunk = _load(data, self.provider)
        deltas = []
        finished_any = False
        for index, text, calls, finish in _candidates(chunk, self.provider):
            for call in calls:
                call["index"] = self.tool_count
                call["id"] = f"call_{self.tool_count}"
                self.tool_count += 1
            finished_any = finished_any or bool(finish)
            if text or calls or finish:
                deltas.append(
                    StreamDelta(
                        content=text,
                        tool_calls=calls or None,
                        finish_reason=finish,
                        index=index,
                        model=chunk.get("modelVersion") or None,
                        provider=self.provider,
                        upstream_id=str(chunk.get("responseId") or ""),
                    )
                )
        if finished_any:
            self.finished = True
            # Gemini's usage covers every candidate; it rides on the last piece.
            deltas[-1].usage = _usage(chunk.get("usageMetadata"))
        return deltas

    def finish(self) -> list[StreamDelta]:
        if not self.finished:
            raise stream_incomplete(self.provider)
        return []


class GeminiAdapter:
    wire = WIRE_GEMINI

    def build_request(self, request: ChatRequest, config: ProviderConfig) -> UpstreamRequest:
        system: list[str] = []
        contents: list[dict[str, Any]] = []
        tool_names: dict[str, str] = {}  # tool_call_id -> function name, for the functionResponse
        for message in request.messages:
            role = message.get("role")
            if role in ("system", "developer"):
                system.append(text_of(message.get("content")))
            elif role == "assistant":
                parts = _parts(message.get("content")) if message.get("content") else []
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    tool_names[call.get("id") or ""] = function.get("name") or ""
                    args = arguments_object(function.get("arguments"))
                    parts.append({"functionCall": {"name": function.get("name"), "args": args}})
                contents.append({"role": "model", "parts": parts or [{"text": ""}]})
            elif role == "tool":
                name = message.get("name") or tool_names.get(message.get("tool_call_id") or "", "")
                response = {"name": name, "response": {"content": text_of(message.get("content"))}}
                contents.append({"role": "user", "parts": [{"functionResponse": response}]})
            else:
                contents.append({"role": "user", "parts": _parts(message.get("content"))})
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(part for part in system if part)}]}
        generation: dict[str, Any] = {}
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        if request.max_tokens is not None:
            generation["maxOutputTokens"] = request.max_tokens
        if request.top_p is not None:
            generation["topP"] = request.top_p
        if request.stop:
            generation["stopSequences"] = request.stop
        generation.update(_generation_params(request.params))
        if generation:
            body["generationConfig"] = generation
        body.update(_tools(request.params))
        body.update(request.extra_body)
        model = quote(request.model.removeprefix("models/"), safe="")
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        headers = {
            "x-goog-api-key": config.api_key,
            "accept": "text/event-stream" if request.stream else "application/json",
        }
        headers.update(config.headers)
        return UpstreamRequest(
            method="POST",
            url=f"{config.base_url.rstrip('/')}/models/{model}:{method}",
            headers=headers,
            json=body,
        )

    def parse_response(self, body: bytes, config: ProviderConfig) -> ChatResult:
        data = _load(body, config.name)
        if "candidates" not in data and "promptFeedback" not in data:
            raise malformed(config.name)
        candidates = _candidates(data, config.name)
        _, text, calls, finish = candidates[0]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        choices = None
        if len(candidates) > 1:
            choices = []
            for index, c_text, c_calls, c_finish in candidates:
                c_message: dict[str, Any] = {"role": "assistant", "content": c_text}
                if c_calls:
                    c_message["tool_calls"] = c_calls
                choices.append(
                    {
                        "index": index,
                        "message": c_message,
                        "finish_reason": c_finish or "stop",
                        "logprobs": None,
                    }
                )
        return ChatResult(
            content=text,
            model=str(data.get("modelVersion") or ""),
            provider=config.name,
            usage=_usage(data.get("usageMetadata")),
            finish_reason=finish,
            upstream_id=str(data.get("responseId") or ""),
            message=message,
            choices=choices,
        )

    def stream_parser(self, config: ProviderConfig) -> GeminiStreamParser:
        return GeminiStreamParser(config)

    def map_error(
        self, status: int, body: bytes, headers: dict[str, str], config: ProviderConfig | None = None
    ) -> UpstreamError:
        provider = config.name if config else "google"
        try:
            error = json.loads(body).get("error")
        except (ValueError, RecursionError, UnicodeDecodeError, AttributeError):
            error = None
        return _error(error, provider, status, headers)


adapter = GeminiAdapter()
