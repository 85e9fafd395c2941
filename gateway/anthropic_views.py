"""Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

A thin face: the body is checked and translated (`gateway.anthropic_format`) and run through the one
billed pipeline (`LLMGateway`), whose answer or stream is rendered back as a `message` object or
Anthropic's stream events. Keys come as `x-api-key` (what Anthropic's SDKs send) or
`Authorization: Bearer`; `anthropic-version` is accepted whatever it says, `anthropic-beta` is passed on
to Anthropic. Errors have Anthropic's shape (`smartspec.errors.anthropic_error_response`).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from smartspec.errors import (
    APIError,
    AuthenticationError,
    MethodNotAllowed,
    UpstreamError,
    anthropic_error_body,
    anthropic_error_response,
)

from . import anthropic_format
from .client import prompt_tokens_count
from .db import run_db_step
from .service import GatewayStream, LLMGateway
from .views import (
    _json_body,
    _key_checked,
    _key_lookup_sync,
    _parsed_call_open,
    _presented_key,
    _sse_response,
    openai_json,
)


def _presented(request: HttpRequest) -> str:
    """The caller's key: `x-api-key`, else `Authorization: Bearer`."""
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    if request.headers.get("Authorization"):
        return _presented_key(request)
    raise AuthenticationError("Send your API key as x-api-key (or Authorization: Bearer).")


def _betas(request: HttpRequest) -> list[str]:
    return anthropic_format.betas(request.headers.get("anthropic-beta", ""))


async def _events(stream: GatewayStream, events: anthropic_format.MessageEvents):
    for event in events.start():
        yield anthropic_format.sse(event)
    try:
        async for delta in stream:
            for event in events.delta(delta):
                yield anthropic_format.sse(event)
    except UpstreamError as exc:
        # Broken after output started: Anthropic's SDK raises on an `error` event; what came is billed.
        _, body = anthropic_error_body(exc)
        for event in events.fail(body["error"]):
            yield anthropic_format.sse(event)
        return
    for event in events.finish(stream.response):
        yield anthropic_format.sse(event)


@csrf_exempt
async def messages_create(request: HttpRequest) -> HttpResponse:
    """Create a message (Anthropic's event stream when `stream` is true), billed in credits."""
    if request.method != "POST":
        return anthropic_error_response(MethodNotAllowed())
    try:
        parsed, opened = await _parsed_call_open(
            request,
            _presented(request),
            lambda: anthropic_format.messages_request(_json_body(request), beta=_betas(request)),
        )
        gateway = LLMGateway()
        message_id = anthropic_format.new_id()
        # The receipt (`GET /v1/generation?id=msg_...`) is found by the id the client gets.
        opened.prepared.response_id = message_id
        if parsed.request.stream:
            stream = await gateway.stream_opened(opened, keep_text=False)
            events = anthropic_format.MessageEvents(message_id=message_id, model=stream.model)
            return _sse_response(_events(stream, events), stream)
        answer = await gateway.invoke_opened(opened)
        return openai_json(anthropic_format.message_object(answer, message_id=message_id))
    except APIError as exc:
        return anthropic_error_response(exc)


@csrf_exempt
async def messages_count_tokens(request: HttpRequest) -> HttpResponse:
    """Count a Messages request's input tokens, free of charge (Anthropic's count on Anthropic routes,
    else our estimate, flagged `estimated`)."""
    if request.method != "POST":
        return anthropic_error_response(MethodNotAllowed())
    try:
        api_key, _ = await run_db_step(_key_lookup_sync)(_presented(request), cache_keys=[])
        _key_checked(api_key)
        parsed = anthropic_format.count_request(_json_body(request), beta=_betas(request))
        tokens, estimated = await prompt_tokens_count(parsed.request)
        return openai_json(anthropic_format.count_object(tokens, estimated=estimated))
    except APIError as exc:
        return anthropic_error_response(exc)
