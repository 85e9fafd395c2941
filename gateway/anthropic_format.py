"""The wire shapes of Anthropic's Messages API (`POST /v1/messages`): its body checked and translated
into the internal chat request, and the internal answer (or stream) rendered back as a `message` object
and its stream events. Pure translation, one direction per function; the view runs the one billed
pipeline in between.

Every call carries both forms: the translated chat messages (what routing, the hold's bound and the
non-Anthropic routes use) and the caller's own body (`LLMRequest.anthropic`), which the Anthropic wires
send as given, so Claude models keep every native feature (`cache_control`, thinking blocks with their
signatures, documents, server tools, betas).

Translated for other models: `system` (a string or text blocks) as a system message; `text`, `image`
(base64 or URL) and `document` (base64 PDF, plain text) blocks as chat parts; assistant `tool_use` blocks
as `tool_calls`; `tool_result` blocks as `tool` messages; custom `tools` as functions, `tool_choice`
(auto, any, tool, none; `disable_parallel_tool_use`), `stop_sequences`, `temperature`, `top_p`, `top_k`,
`thinking` (a `budget_tokens`, or adaptive at `output_config.effort`) as reasoning, `output_config.format`
as a JSON schema `response_format`, `metadata.user_id` as `user`. Anthropic-only fields (top-level
`cache_control`, `container`, `service_tier`, `speed`, `inference_geo`, ...) reach Anthropic only.
Thinking blocks of earlier turns and Anthropic's server tools have no chat equivalent and are left out
of the translation.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from smartspec.errors import InvalidRequest

from .client import FORBIDDEN_FIELDS, LLMRequest, LLMResponse
from .openai_format import json_body, money
from .providers.base import StreamDelta
from .routing import BUDGET_PRIORITIES, DATA_COLLECTION, MAX_FALLBACK_MODELS, SORTS, TASK_TYPES

# The gateway's routing extensions, as on chat completions; never sent upstream.
EXTENSIONS = ("task_type", "budget_priority", "fallback_models", "models", "use_openrouter", "provider")
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
_BETA = re.compile(r"^[A-Za-z0-9._\-]{1,100}$")
MAX_BETAS = 32
# Anthropic's tools without a `type` (or `custom`) are the caller's functions; the rest run on its servers.
CUSTOM_TOOL_TYPES = (None, "custom")


def _invalid(message: str, code: str = "invalid_request") -> InvalidRequest:
    return InvalidRequest(message, code=code)


@dataclass(slots=True)
class ParsedMessages:
    request: LLMRequest


def betas(header: str) -> list[str]:
    """The `anthropic-beta` header's names (comma-separated); a malformed one is a 400."""
    names = [name.strip() for name in header.split(",") if name.strip()]
    if len(names) > MAX_BETAS or not all(_BETA.match(name) for name in names):
        raise _invalid("anthropic-beta must be a comma-separated list of beta names.", "invalid_beta")
    return names


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string.")
    return value


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _invalid("system must be a string or a list of text blocks.")
    parts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system[{index}] must be a text block.")
        parts.append(_text(block.get("text"), f"system[{index}].text"))
    return "\n\n".join(part for part in parts if part)


def _image_part(source: Any, where: str) -> dict[str, Any]:
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source must be an object.")
    kind = source.get("type")
    if kind == "base64":
        media = _text(source.get("media_type"), f"{where}.source.media_type")
        data = _text(source.get("data"), f"{where}.source.data")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": _text(source.get("url"), f"{where}.source.url")}}
    raise _invalid(f"{where}.source.type must be base64 or url.")


def _document_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source must be an object.")
    if source.get("type") == "base64":
        media = _text(source.get("media_type"), f"{where}.source.media_type")
        data = _text(source.get("data"), f"{where}.source.data")
        title = block.get("title") if isinstance(block.get("title"), str) else "document.pdf"
        return {"type": "file", "file": {"filename": title, "file_data": f"data:{media};base64,{data}"}}
    if source.get("type") == "text":
        return {"type": "text", "text": _text(source.get("data"), f"{where}.source.data")}
    # URL and file sources: only Anthropic reads them; passed on as the block it is.
    return block


def _result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"{where}.content must be a string or a list of blocks.")
    parts = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise _invalid(f"{where}.content[{index}] must be an object.")
        if block.get("type") == "text":
            parts.append(_text(block.get("text"), f"{where}.content[{index}].text"))
    return "".join(parts)


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One user turn as chat messages: its tool results first (as `tool` messages), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text(block.get("text"), f"{at}.text")})
        elif kind == "image":
            parts.append(_image_part(block.get("source"), at))
        elif kind == "document":
            parts.append(_document_part(block, at))
        elif kind == "tool_result":
            tool_use_id = _text(block.get("tool_use_id"), f"{at}.tool_use_id")
            text = _result_text(block.get("content"), at)
            if block.get("is_error") is True:
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": tool_use_id, "content": text})
        else:
            parts.append(block)  # a block only Anthropic knows (search_result, ...): as given
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            text.append(_text(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            tool_input = block.get("input", {})
            if not isinstance(tool_input, dict):
                raise _invalid(f"{at}.input must be an object.")
            calls.append(
                {
                    "id": _text(block.get("id"), f"{at}.id"),
                    "type": "function",
                    "function": {
                        "name": _text(block.get("name"), f"{at}.name"),
                        "arguments": json.dumps(tool_input),
                    },
                }
            )
        # thinking, redacted_thinking and server tool blocks: Anthropic's own, no chat equivalent.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`system` + `messages` as chat messages."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages must be a non-empty list.", "invalid_messages")
    out: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid(f"{where} must be an object.", "invalid_messages")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise _invalid(f"{where}.role must be user or assistant.", "invalid_messages")
        if isinstance(content, list):
            if not all(isinstance(block, dict) and isinstance(block.get("type"), str) for block in content):
                raise _invalid(f"{where}.content must hold blocks with a type.", "invalid_messages")
        elif not isinstance(content, str):
            raise _invalid(f"{where}.content must be a string or a list of blocks.", "invalid_messages")
        if role == "user":
            out.extend(_user_messages(content, where))
        else:
            out.append(_assistant_message(content, where))
    return out


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _invalid("tools must be a list.", "invalid_tools")
    tools = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise _invalid(f"tools[{index}] must be an object.", "invalid_tools")
        if tool.get("type") not in CUSTOM_TOOL_TYPES:
            if not isinstance(tool.get("type"), str) or not isinstance(tool.get("name"), str):
                raise _invalid(f"tools[{index}] needs a type and a name.", "invalid_tools")
            continue  # a server tool: Anthropic runs it on the native route; no chat equivalent
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"tools[{index}].name is required.", "invalid_tools")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _invalid(f"tools[{index}].input_schema must be an object.", "invalid_tools")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> tuple[Any, bool]:
    """(chat `tool_choice`, parallel tool use disabled)."""
    if not isinstance(value, dict):
        raise _invalid("tool_choice must be an object with a type.", "invalid_tool_choice")
    kind = value.get("type")
    serial = value.get("disable_parallel_tool_use") is True
    if kind == "auto":
        return "auto", serial
    if kind == "any":
        return "required", serial
    if kind == "none":
        return "none", False
    if kind == "tool" and isinstance(value.get("name"), str) and value["name"]:
        return {"type": "function", "function": {"name": value["name"]}}, serial
    raise _invalid("tool_choice.type must be auto, any, none or tool (with a name).", "invalid_tool_choice")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(f"{name} must be a number between {low:g} and {high:g}.")
    return value


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """The chat parameters (OpenAI names) of a Messages body."""
    params: dict[str, Any] = {}
    if body.get("tools") is not None:
        tools = _tools(body["tools"])
        if tools:
            params["tools"] = tools
    if body.get("tool_choice") is not None:
        choice, serial = _tool_choice(body["tool_choice"])
        params["tool_choice"] = choice
        if serial:
            params["parallel_tool_calls"] = False
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise _invalid("stop_sequences must be a list of non-empty strings.")
        if stop:
            params["stop"] = stop
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        params["top_p"] = top_p
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise _invalid("top_k must be a non-negative integer.")
        params["top_k"] = top_k
    output = body.get("output_config")
    if output is not None and not isinstance(output, dict):
        raise _invalid("output_config must be an object.")
    effort = (output or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise _invalid(f"output_config.effort must be one of {', '.join(EFFORTS)}.")
    fmt = (output or {}).get("format")
    if fmt is not None:
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(fmt.get("schema"), dict)
        ):
            raise _invalid("output_config.format must be {type: json_schema, schema: {...}}.")
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"]},
        }
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            raise _invalid(f"thinking must be an object with type {', '.join(THINKING_TYPES)}.")
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise _invalid("thinking.budget_tokens must be a positive integer.")
            params["reasoning"] = {"max_tokens": budget}
        elif thinking["type"] != "disabled":
            # Claude decides how much to think: other models think at the effort asked (or medium).
            params["reasoning"] = {"effort": effort or "medium"}
    elif effort is not None:
        params["reasoning"] = {"effort": effort}
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _invalid("metadata must be an object.")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise _invalid("metadata.user_id must be a string.")
        if user_id:
            params["user"] = user_id
    return params


def _routing(body: dict[str, Any]) -> dict[str, Any]:
    """The gateway's routing extensions, checked as chat completions checks them."""
    out: dict[str, Any] = {}
    fallbacks = body.get("fallback_models", body.get("models"))
    if fallbacks is not None:
        if (
            not isinstance(fallbacks, list)
            or len(fallbacks) > MAX_FALLBACK_MODELS
            or not all(isinstance(m, str) and m for m in fallbacks)
        ):
            raise _invalid(f"fallback_models must be a list of at most {MAX_FALLBACK_MODELS} model ids.")
        out["fallback_models"] = fallbacks
    for name, choices in (("task_type", TASK_TYPES), ("budget_priority", BUDGET_PRIORITIES)):
        value = body.get(name)
        if value is not None and value not in choices:
            raise _invalid(f"{name} must be one of {', '.join(choices)}.")
        out[name] = value
    use_openrouter = body.get("use_openrouter", True)
    if not isinstance(use_openrouter, bool):
        raise _invalid("use_openrouter must be a boolean.")
    out["use_openrouter"] = use_openrouter
    provider = body.get("provider") or {}
    if not isinstance(provider, dict):
        raise _invalid("provider must be an object.")
    if provider.get("sort") is not None and provider["sort"] not in SORTS:
        raise _invalid(f"provider.sort must be one of {', '.join(SORTS)}.")
    if provider.get("data_collection") is not None and provider["data_collection"] not in DATA_COLLECTION:
        raise _invalid(f"provider.data_collection must be one of {', '.join(DATA_COLLECTION)}.")
    for name in ("zdr", "require_parameters"):
        if provider.get(name) is not None and not isinstance(provider[name], bool):
            raise _invalid(f"provider.{name} must be a boolean.")
    if provider.get("max_price") is not None and not isinstance(provider["max_price"], dict):
        raise _invalid("provider.max_price must be an object.")
    out.update(
        sort=provider.get("sort"),
        data_collection=provider.get("data_collection") or "allow",
        zdr=provider.get("zdr"),
        max_price=provider.get("max_price"),
        require_parameters=provider.get("require_parameters"),
    )
    return out


def messages_request(body: dict[str, Any], *, beta: list[str] | None = None) -> ParsedMessages:
    """Check and translate a Messages body (`beta`: the `anthropic-beta` names)."""
    for name in FORBIDDEN_FIELDS:
        if name in body:
            raise _invalid(
                f"{name} cannot be set by clients: the gateway chooses upstreams.", "forbidden_field"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model is required.", "invalid_model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _invalid("max_tokens is required: a positive integer.", "invalid_max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream must be a boolean.")
    temperature = _number(body, "temperature", 0, 1)
    params = _params(body)
    top_p = params.pop("top_p", None)
    native = {k: v for k, v in body.items() if k not in EXTENSIONS}
    request = LLMRequest(
        messages=chat_messages(body),
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        stream=stream,
        params={**params, **({"top_p": top_p} if top_p is not None else {})},
        sampling_defaults=False,
        anthropic=native,
        anthropic_beta=list(beta or []),
        **_routing(body),
    )
    return ParsedMessages(request=request)


def count_request(body: dict[str, Any], *, beta: list[str] | None = None) -> ParsedMessages:
    """A `count_tokens` body: a Messages body without `max_tokens` (it counts input only, so any
    thinking budget must fit under the bound it is checked against)."""
    return messages_request({**body, "max_tokens": settings.MAX_OUTPUT_TOKENS, "stream": False}, beta=beta)


# --- Answers -------------------------------------------------------------------------------------


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage(response: LLMResponse) -> dict[str, Any]:
    """Usage in Anthropic's names (cache reads and writes outside `input_tokens`), plus our money."""
    details = response.usage_details
    read = details.get("cached_tokens", 0)
    written = details.get("cache_write_tokens", 0)
    return {
        "input_tokens": max(0, response.usage["prompt_tokens"] - read - written),
        "output_tokens": response.usage["completion_tokens"],
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": details.get("cache_write_5m_tokens", 0),
            "ephemeral_1h_input_tokens": details.get("cache_write_1h_tokens", 0),
        },
        **money(response),
    }


def _tool_input(arguments: Any) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except (ValueError, RecursionError):
        value = {}
    return value if isinstance(value, dict) else {"value": value}


def content_blocks(response: LLMResponse) -> list[dict[str, Any]]:
    """The answer's content blocks: Anthropic's own when it answered natively, else from the chat answer."""
    if response.blocks is not None:
        return response.blocks
    message = response.message or {"content": response.content}
    blocks: list[dict[str, Any]] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        # Another model's reasoning, as a thinking block without Anthropic's signature.
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    return blocks


def stop_reason(response: LLMResponse) -> str:
    if response.stop is not None:
        return response.stop["stop_reason"]
    return STOP_REASONS.get(response.finish_reason or "stop", "end_turn")


def stop_sequence(response: LLMResponse) -> str | None:
    return response.stop.get("stop_sequence") if response.stop is not None else None


def message_object(response: LLMResponse, *, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content_blocks(response),
        "stop_reason": stop_reason(response),
        "stop_sequence": stop_sequence(response),
        "usage": usage(response),
        "provider": response.provider,
    }


def count_object(input_tokens: int, *, estimated: bool) -> dict[str, Any]:
    """`count_tokens`'s answer; `estimated` says it is our estimate, not the model's tokenizer."""
    return {"input_tokens": input_tokens, "estimated": estimated}


# --- Streams -------------------------------------------------------------------------------------


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + json_body(event) + b"\n\n"


class MessageEvents:
    """One stream's Anthropic events from the pipeline's deltas: each run of text, thinking or one tool
    call is a content block, opened on its first piece and stopped when another kind begins."""

    def __init__(self, *, message_id: str, model: str):
        self.message_id = message_id
        self.model = model
        self.index = -1
        self.open: tuple[str, int] | None = None  # (kind, tool index) of the block being written
        self.tools: dict[int, int] = {}  # the chat tool call index -> its block index

    def start(self) -> list[dict[str, Any]]:
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _begin(self, kind: str, block: dict[str, Any], tool: int = -1) -> list[dict[str, Any]]:
        events = self._close()
        self.index += 1
        self.open = (kind, tool)
        events.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return events

    def _piece(self, delta: dict[str, Any], index: int | None = None) -> dict[str, Any]:
        return {
            "type": "content_block_delta",
            "index": self.index if index is None else index,
            "delta": delta,
        }

    def delta(self, delta: StreamDelta) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if delta.thinking:
            if self.open is None or self.open[0] != "thinking":
                events += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._piece({"type": "thinking_delta", "thinking": delta.thinking}))
        if delta.signature and self.open is not None and self.open[0] == "thinking":
            events.append(self._piece({"type": "signature_delta", "signature": delta.signature}))
        if delta.content:
            if self.open is None or self.open[0] != "text":
                events += self._begin("text", {"type": "text", "text": ""})
            events.append(self._piece({"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls or []:
            if not isinstance(call, dict):
                continue
            position = call.get("index", 0) if isinstance(call.get("index"), int) else 0
            function = call.get("function") or {}
            if position not in self.tools:
                block = {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": function.get("name") or "",
                    "input": {},
                }
                events += self._begin("tool", block, position)
                self.tools[position] = self.index
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                events.append(
                    self._piece({"type": "input_json_delta", "partial_json": arguments}, self.tools[position])
                )
        return events

    def finish(self, response: LLMResponse) -> list[dict[str, Any]]:
        events = self._close()
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(response), "stop_sequence": stop_sequence(response)},
                "usage": usage(response),
            }
        )
        events.append({"type": "message_stop"})
        return events

    def fail(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "error", "error": error}]
