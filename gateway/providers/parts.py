"""The OpenAI message parts a translating adapter reads, checked before the call is opened.

Anthropic's and Gemini's adapters rebuild every message: they read `content` parts, `image_url`,
`tool_calls[].function.arguments`, `tools[].function` and `tool_choice` as OpenAI documents them. A
client that sends another shape there (a string for an object, an object for the arguments string,
a number or null as a content part) gets a 400 naming the field, from `chat_prepare_sync`, before any
hold is placed or any upstream is called; the adapters themselves can then rely on the shapes.

OpenAI-compatible upstreams receive the messages as sent, and answer for them themselves.
"""

from __future__ import annotations

from typing import Any

from smartspec.errors import APIError, InvalidRequest
from smartspec.jsonbody import json_loads


def _refuse(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{where} must be {what}.", code="invalid_message_part")


def _optional_str(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise _refuse(where, "a string")


def _content_check(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _refuse(where, "a string or a list of content parts")
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _refuse(at, 'an object with a "type"')
        kind = part["type"]
        if kind == "text" and not isinstance(part.get("text"), str):
            raise _refuse(f"{at}.text", "a string")
        if kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise _refuse(f"{at}.image_url", 'an object with a "url" string')


def _tool_calls_check(tool_calls: Any, where: str) -> None:
    if tool_calls is None:
        return
    if not isinstance(tool_calls, list):
        raise _refuse(where, "a list of tool calls")
    for index, call in enumerate(tool_calls):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise _refuse(at, "an object")
        _optional_str(call.get("id"), f"{at}.id")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _refuse(f"{at}.function", "an object")
        if not isinstance(function.get("name"), str):
            raise _refuse(f"{at}.function.name", "a string")
        # OpenAI's arguments are JSON text (a string), not an object.
        _optional_str(function.get("arguments"), f"{at}.function.arguments")


def _tools_check(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _refuse("tools", "a list of tools")
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _refuse(at, "an object")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _refuse(f"{at}.function", "an object")
        if not isinstance(function.get("name"), str):
            raise _refuse(f"{at}.function.name", "a string")
        _optional_str(function.get("description"), f"{at}.function.description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _refuse(f"{at}.function.parameters", "a JSON schema object")


def _tool_choice_check(choice: Any) -> None:
    if choice is None or isinstance(choice, str):
        return
    if not isinstance(choice, dict):
        raise _refuse("tool_choice", "a string or an object")
    function = choice.get("function")
    if function is not None and not (isinstance(function, dict) and isinstance(function.get("name"), str)):
        raise _refuse("tool_choice.function", 'an object with a "name" string')


def translated_request_check(messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
    """Raise a 400 for any part a translating adapter could not read as OpenAI defines it."""
    for index, message in enumerate(messages):
        at = f"messages[{index}]"
        if not isinstance(message.get("role"), str):
            raise _refuse(f"{at}.role", "a string")
        _content_check(message.get("content"), f"{at}.content")
        _tool_calls_check(message.get("tool_calls"), f"{at}.tool_calls")
        _optional_str(message.get("name"), f"{at}.name")
        _optional_str(message.get("tool_call_id"), f"{at}.tool_call_id")
    _tools_check(params.get("tools"))
    _tool_choice_check(params.get("tool_choice"))


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON `arguments` as the object Anthropic and Gemini take ({} when not one),
    parsed under the same bounds as a request body."""
    if not isinstance(arguments, str) or not arguments:
        return {}
    try:
        return json_loads(arguments)
    except APIError:
        return {}
