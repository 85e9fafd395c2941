"""The wire shapes of OpenAI's Responses API (`POST /v1/responses`): its body translated into the
internal chat request, and the internal answer (or stream) rendered back as a `response` object and
its typed stream events. Pure translation, one direction per function; the view runs the one billed
pipeline in between.

Translated: `input` (a string, or items: `message` with text/image parts, `function_call`,
`function_call_output`; `reasoning` items are left out), `instructions` (a system message that is
not carried over by `previous_response_id`, as OpenAI does), function `tools`, `tool_choice`,
`max_output_tokens`, `temperature`, `top_p`, `reasoning.effort`, `text.format` (json_schema,
json_object), `parallel_tool_calls`, `user`. Other tool types are a 400: no route serves them natively.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from smartspec.errors import InvalidRequest

from .client import FORBIDDEN_FIELDS, LLMRequest, LLMResponse
from .openai_format import REASONING_EFFORTS, money, now

ROLES = ("user", "system", "developer", "assistant")
# The gateway's routing extensions, as on chat completions.
_EXTENSIONS = ("task_type", "budget_priority", "fallback_models", "models", "use_openrouter")


@dataclass(slots=True)
class ParsedResponse:
    """A Responses body, translated: the chat request plus what the `response` object echoes."""

    request: LLMRequest
    messages: list[dict[str, Any]]  # the conversation without `instructions` (what `store` keeps)
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response object repeats
    store: bool = True
    previous_response_id: str | None = None


def _text_parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts.", code="invalid_input")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        else:
            raise InvalidRequest(
                f"{where}.content[{index}] must be an input_text, output_text or input_image part "
                "(image_url as a URL or data URL).",
                code="invalid_input",
            )
    return parts


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(
            p.get("text") or "" for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    raise InvalidRequest("function_call_output.output must be a string.", code="invalid_input")


def input_messages(value: Any) -> list[dict[str, Any]]:
    """`input` (a string or a list of items) as chat messages."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequest("input must not be empty.", code="invalid_input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("input must be a string or a non-empty list of items.", code="invalid_input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object.", code="invalid_input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(f"{where}.role must be one of {', '.join(ROLES)}.", code="invalid_input")
            messages.append({"role": role, "content": _text_parts(item.get("content"), where)})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            arguments = item.get("arguments", "")
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                raise InvalidRequest(f"{where} needs call_id and name.", code="invalid_input")
            if not isinstance(arguments, str):
                raise InvalidRequest(f"{where}.arguments must be a JSON string.", code="invalid_input")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)  # parallel calls of one turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not (isinstance(call_id, str) and call_id):
                raise InvalidRequest(f"{where} needs call_id.", code="invalid_input")
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": _output_text(item.get("output"))}
            )
        elif kind == "reasoning":
            continue  # a previous answer's reasoning summary: nothing a chat upstream can take back
        else:
            raise InvalidRequest(
                f"{where}.type {kind!r} is not supported (message, function_call, function_call_output).",
                code="invalid_input",
            )
    if not messages:
        raise InvalidRequest("input holds no message.", code="invalid_input")
    return messages


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidRequest("tools must be a list.", code="invalid_tools")
    tools = []
    for index, tool in enumerate(value):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise InvalidRequest(
                f"tools[{index}].type {kind!r} is not supported: only function tools are served "
                "(no route here runs OpenAI's built-in tools).",
                code="unsupported_tool",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{index}].name is required.", code="invalid_tools")
        function: dict[str, Any] = {"name": name, "parameters": tool.get("parameters") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise InvalidRequest(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "name": ...}.',
        code="invalid_tool_choice",
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(text, dict) or (fmt is not None and not isinstance(fmt, dict)):
        raise InvalidRequest("text must be an object with an optional format object.", code="invalid_text")
    kind = (fmt or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not name or not isinstance(schema, dict):
            raise InvalidRequest(
                "text.format json_schema needs a name and a schema object.", code="invalid_text"
            )
        spec: dict[str, Any] = {"name": name, "schema": schema}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        if isinstance(fmt.get("description"), str):
            spec["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest("text.format.type must be text, json_object or json_schema.", code="invalid_text")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}.")
    return float(value)


def response_request(body: dict[str, Any], *, history: list[dict[str, Any]] | None = None) -> ParsedResponse:
    """Translate a Responses body; `history` is the stored conversation of `previous_response_id`."""
    for name in FORBIDDEN_FIELDS:
        if name in body:
            raise InvalidRequest(
                f"{name} cannot be set by clients: the gateway chooses upstreams.", code="forbidden_field"
            )
    if "input" not in body:
        raise InvalidRequest("input is required.", code="invalid_input")
    turn = input_messages(body["input"])
    conversation = [*(history or []), *turn]
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("instructions must be a string.")
    messages = ([{"role": "system", "content": instructions}] if instructions else []) + conversation

    params: dict[str, Any] = {}
    tools = body.get("tools")
    if tools:
        params["tools"] = _tools(tools)
    if body.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is not None:
        if not isinstance(body["parallel_tool_calls"], bool):
            raise InvalidRequest("parallel_tool_calls must be true or false.")
        params["parallel_tool_calls"] = body["parallel_tool_calls"]
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequest("reasoning must be an object ({effort, summary}).")
        effort = reasoning.get("effort")
        if effort is not None:
            if effort not in REASONING_EFFORTS:
                raise InvalidRequest(f"reasoning.effort must be one of {', '.join(REASONING_EFFORTS)}.")
            params["reasoning_effort"] = effort
    response_format = _response_format(body.get("text"))
    if response_format:
        params["response_format"] = response_format
    if body.get("user") is not None:
        if not isinstance(body["user"], str):
            raise InvalidRequest("user must be a string.")
        params["user"] = body["user"]
    for name in ("top_logprobs",):
        if body.get(name) is not None:
            params[name] = body[name]
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise InvalidRequest("metadata must be an object of string values.")
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidRequest("max_output_tokens must be a positive integer.", code="invalid_max_tokens")
    for name in ("store", "stream"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise InvalidRequest(f"{name} must be true or false.")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequest("previous_response_id must be a response id.")
    provider = body.get("provider") or {}
    if not isinstance(provider, dict):
        raise InvalidRequest("provider must be an object.")
    fallback = body.get("fallback_models") or body.get("models")
    model = body.get("model")
    request = LLMRequest(
        messages=messages,
        model=model,
        task_type=body.get("task_type"),
        budget_priority=body.get("budget_priority"),
        fallback_models=fallback,
        sort=provider.get("sort"),
        data_collection=provider.get("data_collection") or "allow",
        zdr=provider.get("zdr"),
        max_price=provider.get("max_price"),
        require_parameters=provider.get("require_parameters"),
        temperature=_number(body, "temperature", 0, 2),
        max_tokens=max_tokens,
        use_openrouter=body.get("use_openrouter", True),
        stream=bool(body.get("stream")),
        params={
            **params,
            **({"top_p": _number(body, "top_p", 0, 1)} if body.get("top_p") is not None else {}),
        },
        sampling_defaults=False,
    )
    echo = {
        "instructions": instructions,
        "metadata": metadata or {},
        "temperature": request.temperature,
        "top_p": body.get("top_p"),
        "max_output_tokens": max_tokens,
        "tools": tools or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")},
        "text": {"format": ((body.get("text") or {}).get("format") or {"type": "text"})},
        "user": body.get("user"),
        "previous_response_id": previous,
        "store": body.get("store", True),
    }
    return ParsedResponse(
        request=request,
        messages=conversation,
        echo=echo,
        store=body.get("store", True) is not False,
        previous_response_id=previous,
    )


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def message_item(text: str, *, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if text or status == "completed"
        else [],
    }


def function_call_item(call: dict[str, Any], *, item_id: str, status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.get("id") or item_id,
        "name": function.get("name") or "",
        "arguments": function.get("arguments") or "",
        "status": status,
    }


def output_items(response: LLMResponse) -> list[dict[str, Any]]:
    message = response.message or {"role": "assistant", "content": response.content}
    items = []
    text = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if text or not calls:
        items.append(message_item(text if isinstance(text, str) else response.content, item_id=new_id("msg")))
    items.extend(function_call_item(call, item_id=new_id("fc")) for call in calls)
    return items


def usage(response: LLMResponse) -> dict[str, Any]:
    details = response.usage_details
    return {
        "input_tokens": response.usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": details.get("cached_tokens", 0),
            "cache_write_tokens": details.get("cache_write_tokens", 0),
        },
        "output_tokens": response.usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": details.get("reasoning_tokens", 0)},
        "total_tokens": response.usage["total_tokens"],
        **money(response),
    }


def response_object(
    *,
    response_id: str,
    created_at: int,
    echo: dict[str, Any],
    model: str,
    provider: str = "",
    output: list[dict[str, Any]],
    status: str,
    answer: LLMResponse | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """OpenAI's `response` object (plus `provider`, the provider that answered)."""
    incomplete = None
    if answer is not None and answer.finish_reason == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif answer is not None and answer.finish_reason == "content_filter":
        status, incomplete = "incomplete", {"reason": "content_filter"}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": now() if status in ("completed", "incomplete") else None,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "provider": provider,
        "output": output,
        **echo,
        "usage": usage(answer) if answer is not None else None,
    }


def stored_messages(parsed: ParsedResponse, response: LLMResponse) -> list[dict[str, Any]]:
    """The conversation to continue from: this turn's input and the answer (without instructions)."""
    message = dict(response.message or {"role": "assistant", "content": response.content})
    answer = {"role": "assistant", "content": message.get("content") or None}
    if message.get("tool_calls"):
        answer["tool_calls"] = message["tool_calls"]
    elif answer["content"] is None:
        answer["content"] = ""
    return [*parsed.messages, answer]


class ResponseEvents:
    """One streamed response as the Responses API's typed events, each with its `sequence_number`.

    Text pieces go into one `message` item (its one `output_text` part); each tool call of the chat
    stream becomes a `function_call` item whose arguments arrive as deltas. `finish()` closes the open
    items and ends with `response.completed` (or `incomplete`); `fail()` ends with `response.failed`.
    """

    def __init__(self, *, response_id: str, created_at: int, echo: dict[str, Any], model: str):
        self.response_id = response_id
        self.created_at = created_at
        self.echo = echo
        self.model = model
        self.provider = ""
        self.sequence = 0
        self.items: list[dict[str, Any]] = []  # output items, in order
        self.text_item: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool_calls index -> function_call item

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _snapshot(self, status: str, answer: LLMResponse | None = None, error=None) -> dict[str, Any]:
        return response_object(
            response_id=self.response_id,
            created_at=self.created_at,
            echo=self.echo,
            model=self.model,
            provider=self.provider,
            output=[dict(item) for item in self.items] if status != "in_progress" else [],
            status=status,
            answer=answer,
            error=error,
        )

    def start(self) -> list[dict[str, Any]]:
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def delta(self, *, content: str, tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if content:
            if self.text_item is None:
                self.text_item = message_item("", item_id=new_id("msg"), status="in_progress")
                self.text_item["_text"] = ""
                self.items.append(self.text_item)
                index = len(self.items) - 1
                added = {k: v for k, v in self.text_item.items() if not k.startswith("_")}
                events.append(self._event("response.output_item.added", output_index=index, item=added))
                events.append(
                    self._event(
                        "response.content_part.added",
                        item_id=self.text_item["id"],
                        output_index=index,
                        content_index=0,
                        part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                    )
                )
            self.text_item["_text"] += content
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self.text_item["id"],
                    output_index=self.items.index(self.text_item),
                    content_index=0,
                    delta=content,
                    logprobs=[],
                )
            )
        for call in tool_calls or []:
            position = call.get("index", 0) if isinstance(call.get("index"), int) else 0
            function = call.get("function") or {}
            item = self.calls.get(position)
            if item is None:
                item = function_call_item(
                    {"id": call.get("id"), "function": {"name": function.get("name"), "arguments": ""}},
                    item_id=new_id("fc"),
                    status="in_progress",
                )
                self.calls[position] = item
                self.items.append(item)
                events.append(
                    self._event(
                        "response.output_item.added", output_index=len(self.items) - 1, item=dict(item)
                    )
                )
            elif function.get("name") and not item["name"]:
                item["name"] = function["name"]
            piece = function.get("arguments") or ""
            if piece:
                item["arguments"] += piece
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=self.items.index(item),
                        delta=piece,
                    )
                )
        return events

    def _close_items(self) -> list[dict[str, Any]]:
        events = []
        for index, item in enumerate(self.items):
            if item["type"] == "message":
                text = item.pop("_text", "")
                item["status"] = "completed"
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                item["content"] = [part]
                events.append(
                    self._event(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        text=text,
                        logprobs=[],
                    )
                )
                events.append(
                    self._event(
                        "response.content_part.done",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        part=part,
                    )
                )
            else:
                item["status"] = "completed"
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
            events.append(self._event("response.output_item.done", output_index=index, item=dict(item)))
        return events

    def finish(self, answer: LLMResponse) -> list[dict[str, Any]]:
        self.model, self.provider = answer.model, answer.provider
        events = self._close_items()
        final = self._snapshot("completed", answer)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        events.append(self._event(kind, response=final))
        self.final = final
        return events

    def fail(self, error: dict[str, Any], answer: LLMResponse | None) -> list[dict[str, Any]]:
        for item in self.items:
            item.pop("_text", None)
            item["status"] = "incomplete"
        failed = self._snapshot(
            "failed", answer, error={"code": "server_error", "message": error.get("message", "")}
        )
        return [self._event("response.failed", response=failed)]

    def assistant_message(self) -> dict[str, Any]:
        """What the answer adds to the stored conversation."""
        text = "".join(
            item.get("content", [{}])[0].get("text", "") for item in self.items if item["type"] == "message"
        )
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        calls = [
            {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            for item in self.items
            if item["type"] == "function_call"
        ]
        if calls:
            message["tool_calls"] = calls
        elif message["content"] is None:
            message["content"] = ""
        return message
