"""OpenAI's Responses API: `POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`.

A thin face: the body is translated into the internal chat request (`gateway.responses_format`) and
run through the one billed pipeline (`LLMGateway`), whose answer or stream is rendered back as a
`response` object or its typed events. Stored responses live in `gateway.responses`.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from smartspec.errors import APIError, MethodNotAllowed, UpstreamError, error_response

from . import responses_format
from .db import run_db_step
from .limits import KeyLimits
from .openai_format import json_body, now, number
from .responses import stored_response_create, stored_response_delete, stored_response_get
from .service import GatewayStream, LLMGateway
from .views import _caller, _json_body, _sse_response, openai_json


def _typed_sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + json_body(event) + b"\n\n"


def _storable(body: dict[str, Any]) -> dict[str, Any]:
    """The response object as plain JSON for the database: money stays a decimal string."""
    plain = orjson.loads(json_body({**body, "usage": None}))
    usage = body.get("usage")
    if usage:
        plain["usage"] = {
            **orjson.loads(json_body({k: v for k, v in usage.items() if k not in ("cost", "credits")})),
            "cost": orjson.dumps(usage["cost"]).decode(),
            "credits": orjson.dumps(usage["credits"]).decode(),
        }
    return plain


def _rendered(stored: dict[str, Any]) -> dict[str, Any]:
    usage = stored.get("usage")
    if not usage:
        return stored
    return {**stored, "usage": {**usage, "cost": number(usage["cost"]), "credits": number(usage["credits"])}}


async def _store(*, user, parsed, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    if parsed.store:
        await run_db_step(stored_response_create)(
            user=user, response_id=body["id"], body=_storable(body), messages=messages
        )


async def _events(stream: GatewayStream, parsed, events: responses_format.ResponseEvents, user):
    for event in events.start():
        yield _typed_sse(event)
    try:
        async for delta in stream:
            for event in events.delta(content=delta.content, tool_calls=delta.tool_calls):
                yield _typed_sse(event)
    except UpstreamError as exc:
        for event in events.fail(exc.as_dict()["error"], stream.response):
            yield _typed_sse(event)
        return
    closing = events.finish(stream.response)
    # Stored before the client hears `completed`, so an immediate follow-up finds it.
    await _store(
        user=user, parsed=parsed, body=events.final, messages=[*parsed.messages, events.assistant_message()]
    )
    for event in closing:
        yield _typed_sse(event)


@csrf_exempt
async def responses_create(request: HttpRequest) -> HttpResponse:
    """Create a model response (SSE of typed events when `stream` is true), billed in credits."""
    if request.method != "POST":
        return error_response(MethodNotAllowed())
    try:
        user, api_key = await _caller(request)
        body = _json_body(request)
        history = None
        previous = body.get("previous_response_id")
        if isinstance(previous, str) and previous:
            stored = await run_db_step(stored_response_get)(user=user, response_id=previous)
            history = stored.messages
        parsed = responses_format.response_request(body, history=history)
        response_id, created = responses_format.new_id("resp"), now()
        ids = {
            "api_key_id": api_key.pk if api_key else None,
            "request_id": request.request_id,
            "limits": KeyLimits.from_api_key(api_key) if api_key else None,
            # The receipt (`GET /v1/generation?id=resp_...`) is found by the id the client was given.
            "response_id": response_id,
        }
        gateway = LLMGateway()
        if parsed.request.stream:
            stream = await gateway.stream_open(parsed.request, user, **ids)
            events = responses_format.ResponseEvents(
                response_id=response_id, created_at=created, echo=parsed.echo, model=stream.model
            )
            events.provider = stream.provider
            return _sse_response(_events(stream, parsed, events, user), stream)
        answer = await gateway.invoke(parsed.request, user, **ids)
        result = responses_format.response_object(
            response_id=response_id,
            created_at=created,
            echo=parsed.echo,
            model=answer.model,
            provider=answer.provider,
            output=responses_format.output_items(answer),
            status="completed",
            answer=answer,
        )
        await _store(
            user=user, parsed=parsed, body=result, messages=responses_format.stored_messages(parsed, answer)
        )
        return openai_json(result)
    except APIError as exc:
        return error_response(exc)


@csrf_exempt
async def response_detail(request: HttpRequest, response_id: str) -> HttpResponse:
    """A stored response of the caller (`GET`), or its deletion (`DELETE`)."""
    if request.method not in ("GET", "DELETE"):
        return error_response(MethodNotAllowed())
    try:
        user, _ = await _caller(request)
        if request.method == "DELETE":
            await run_db_step(stored_response_delete)(user=user, response_id=response_id)
            return openai_json({"id": response_id, "object": "response", "deleted": True})
        stored = await run_db_step(stored_response_get)(user=user, response_id=response_id)
        return openai_json(_rendered(stored.body))
    except APIError as exc:
        return error_response(exc)
