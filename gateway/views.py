"""The hot paths as plain async Django views: `POST /v1/chat/completions` and `POST /api/llm/chat`.

DRF's views are sync, so these authenticate with the same API keys themselves and render errors
with the project's one error format. Parsing and shaping live in `gateway.openai_format`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from monitoring.health import circuit_read_ahead_keys, circuits_prime, circuits_unprime
from smartspec.errors import (
    BACKING_SERVICE_DOWN,
    APIError,
    AuthenticationError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    RequestTooLarge,
    ServiceUnavailable,
    UpstreamError,
    error_response,
)
from smartspec.jsonbody import json_loads

from . import openai_format
from .catalog import catalog_cache_keys, catalog_prime, catalog_unprime
from .client import LLMRequest
from .db import run_db_step
from .keys import api_key_authenticate_prefetching
from .limits import KeyLimits
from .models import ApiKey
from .providers import circuit_providers
from .service import GatewayStream, LLMGateway, OpenedCall, call_abandon, call_open_sync

logger = logging.getLogger(__name__)

_SCHEMES = ("bearer", "token")
_closing: set[asyncio.Task] = set()


def _presented_key(request: HttpRequest) -> str:
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() not in _SCHEMES:
        raise AuthenticationError()
    return parts[1]


def _key_checked(api_key: ApiKey | None) -> ApiKey:
    if api_key is None:
        # Never echo the presented key back.
        raise AuthenticationError("Invalid or revoked API key.")
    return api_key


def _key_lookup_sync(
    raw: str, *, cache_keys: list[str], hash_keys: list[str] = ()
) -> tuple[ApiKey | None, dict]:
    try:
        return api_key_authenticate_prefetching(raw, cache_keys=cache_keys, hash_keys=hash_keys)
    except (DatabaseError, *BACKING_SERVICE_DOWN):
        # The database, or the Redis cache in front of it, is down: fail closed.
        raise ServiceUnavailable("The key store is unavailable; try again shortly.")


async def _authenticate(request: HttpRequest) -> ApiKey:
    api_key, _ = await run_db_step(_key_lookup_sync)(_presented_key(request), cache_keys=[])
    return _key_checked(api_key)


def _key_and_call_open_sync(
    raw: str, *, llm_request: LLMRequest | None, request_id: str
) -> tuple[ApiKey | None, OpenedCall | None]:
    """One DB step: the caller's key, read in the same cache round trip as the route's catalog
    entries and the configured providers' circuit states, then (for a valid body and a good key) the
    call opened with its hold placed."""
    route = [llm_request.model, *(llm_request.fallback_models or [])] if llm_request else []
    circuits = circuit_read_ahead_keys(circuit_providers()) if llm_request else []
    api_key, cached = _key_lookup_sync(
        raw, cache_keys=catalog_cache_keys(model_ids=route), hash_keys=circuits
    )
    if api_key is None or llm_request is None:
        return api_key, None
    primed = catalog_prime(cached=cached)
    circuits_primed = circuits_prime({key: cached[key] for key in circuits if key in cached})
    try:
        opened = call_open_sync(
            llm_request,
            user=api_key.user,
            api_key_id=api_key.pk,
            request_id=request_id,
            limits=KeyLimits.from_api_key(api_key),
        )
    finally:
        circuits_unprime(circuits_primed)
        catalog_unprime(primed)
    return api_key, opened


def _opened_abandon(result: tuple[Any, OpenedCall | None]) -> None:
    if result[1] is not None:
        call_abandon(result[1])


async def _parsed_call_open(
    request: HttpRequest, raw: str, parse: Callable[[], Any]
) -> tuple[Any, OpenedCall]:
    """Parse a face's body (`parse()`: an object with the `.request` it maps to), then check the key and
    open the call in one DB step, so the key, the route's catalog entries and the hold take one DB step
    and one cache round trip. A bad body is still answered after a bad key."""
    try:
        parsed, invalid = parse(), None
    except APIError as exc:
        parsed, invalid = None, exc
    api_key, opened = await run_db_step(_key_and_call_open_sync, on_dropped=_opened_abandon)(
        raw, llm_request=parsed.request if parsed else None, request_id=request.request_id
    )
    _key_checked(api_key)
    if invalid is not None:
        raise invalid
    return parsed, opened


async def _caller(request: HttpRequest) -> tuple[Any, ApiKey | None]:
    """The user and key of a call: an API key, or (the dashboard's playground) the signed-in session,
    which must then carry the CSRF token like any other form post."""
    if request.headers.get("Authorization"):
        api_key = await _authenticate(request)
        return api_key.user, api_key
    user = await request.auser()
    if not user.is_authenticated:
        raise AuthenticationError()
    # The view is csrf_exempt for key callers; a session caller gets the middleware's own check.
    if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
        raise Forbidden("CSRF token missing or incorrect.", code="csrf_failed")
    return user, None


def _json_body(request: HttpRequest) -> dict:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise RequestTooLarge()
    # The one bounded, strict intake (size, depth, text, numbers); a chunked body carries no
    # Content-Length for Django to check beforehand, so its size is checked there too.
    return json_loads(raw)


def openai_json(
    payload: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """An OpenAI-shaped JSON answer, money as exact JSON numbers (orjson fragments)."""
    return HttpResponse(
        openai_format.json_body(payload), status=status, content_type="application/json", headers=headers
    )


class GatewayStreamingResponse(StreamingHttpResponse):
    """SSE for one billed stream; closing the response closes the stream even if it was never read
    (a client gone before the first byte), so its hold is settled or released, not left to expire."""

    def __init__(self, events, stream: GatewayStream):
        super().__init__(events, content_type="text/event-stream")
        self._gateway_stream = stream
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()

    def close(self) -> None:
        super().close()
        # Django calls close() from a worker thread; the stream belongs to the event loop (and runs
        # in the view's context, not the worker thread's).
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._close_stream, context=self._context)

    def _close_stream(self) -> None:
        task = asyncio.ensure_future(self._gateway_stream.aclose())
        # The loop keeps only weak references to tasks: hold this one until it is done.
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def _sse_response(events, stream: GatewayStream) -> StreamingHttpResponse:
    response = GatewayStreamingResponse(events, stream)
    response["Cache-Control"] = "no-cache"
    # Proxies such as nginx must pass each event on at once.
    response["X-Accel-Buffering"] = "no"
    return response


async def _chat_completion_events(stream: GatewayStream, include_usage: bool, created: int):
    """OpenAI's SSE framing: one `data: {chunk}` per delta, usage last when asked, then `[DONE]`."""
    first, finish_sent = True, False
    chunks = openai_format.CompletionChunks(stream, created)
    try:
        async for delta in stream:
            event = chunks.event(delta, first=first)
            if event is not None:
                first = False
                finish_sent = finish_sent or bool(delta.finish_reason)
                yield event
    except UpstreamError as exc:
        # The stream broke after output started; OpenAI's SDK raises on an `error` event.
        yield openai_format.sse({"error": exc.as_dict()["error"]})
        return
    for chunk in openai_format.completion_final_chunks(
        stream, created, include_usage=include_usage, finish_sent=finish_sent
    ):
        yield openai_format.sse(chunk)
    yield openai_format.SSE_DONE


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """OpenAI-compatible chat completions, streamed or not, billed in credits."""
    if request.method != "POST":
        return error_response(MethodNotAllowed())
    try:
        parsed, opened = await _parsed_call_open(
            request,
            _presented_key(request),
            lambda: openai_format.chat_completion_request(_json_body(request)),
        )
        gateway = LLMGateway()
        if parsed.request.stream:
            stream = await gateway.stream_opened(opened, keep_text=False)
            response = _sse_response(
                _chat_completion_events(stream, parsed.include_usage, openai_format.now()), stream
            )
            for name, value in openai_format.dropped_header(stream.attempt.dropped).items():
                response[name] = value
            return response
        answer = await gateway.invoke_opened(opened)
        return openai_json(
            openai_format.completion(answer), headers=openai_format.dropped_header(answer.dropped_params)
        )
    except APIError as exc:
        return error_response(exc)


async def _native_events(stream: GatewayStream):
    try:
        async for delta in stream:
            if delta.content:
                yield openai_format.sse({"content": delta.content})
    except UpstreamError as exc:
        yield openai_format.sse({"error": exc.as_dict()["error"]})
        return
    yield openai_format.sse({"response": openai_format.llm_response(stream.response)})
    yield openai_format.SSE_DONE


@csrf_exempt
async def llm_chat(request: HttpRequest) -> HttpResponse:
    """The native call: LLMRequest in, LLMResponse out (SSE of content pieces when `stream` is true)."""
    if request.method != "POST":
        return error_response(MethodNotAllowed())
    try:
        user, api_key = await _caller(request)
        llm_request = openai_format.llm_request(_json_body(request))
        gateway = LLMGateway()
        ids = {
            "api_key_id": api_key.pk if api_key else None,
            "request_id": request.request_id,
            "limits": KeyLimits.from_api_key(api_key) if api_key else None,
        }
        if llm_request.stream:
            stream = await gateway.stream_open(llm_request, user, **ids)
            return _sse_response(_native_events(stream), stream)
        response = await gateway.invoke(llm_request, user, **ids)
        return JsonResponse(openai_format.llm_response(response))
    except APIError as exc:
        return error_response(exc)


@csrf_exempt
async def embeddings(request: HttpRequest) -> HttpResponse:
    """OpenAI's embeddings, billed like chat: a hold for the input bound x price, settled at cost."""
    if request.method != "POST":
        return error_response(MethodNotAllowed())
    try:
        # The key, the route's catalog entries and the hold in one DB step, as for chat completions.
        parsed, opened = await _parsed_call_open(
            request,
            _presented_key(request),
            lambda: openai_format.embeddings_request(_json_body(request)),
        )
        answer = await LLMGateway().invoke_opened(opened)
        return openai_json(openai_format.embeddings_response(answer, encoding_format=parsed.encoding_format))
    except APIError as exc:
        return error_response(exc)


@csrf_exempt
async def legacy_completions(request: HttpRequest) -> HttpResponse:
    """Legacy text completions: no route serves them; the error names the endpoint that does."""
    return error_response(
        InvalidRequest(
            "The legacy completions API (POST /v1/completions) is not served: send the prompt as a user "
            "message to POST /v1/chat/completions (or use POST /v1/responses).",
            code="unsupported_endpoint",
        )
    )
