"""The API faces served as plain ASGI: the same async views, without Django's request handler.

Django's ASGI handler costs an API call more than its own gateway work did (docs/PERFORMANCE.md,
the per-stage table): it builds a full `HttpRequest` (META from every header), sends the
request_started/request_finished signals through `sync_to_async` (two hops to a worker thread per
request), resolves the URL, runs the middleware chain, and closes the response on a worker thread (a
third hop). An API-key call needs none of it: no session, no CSRF, no template, no cookie.

`LeanApi` serves a fixed set of paths (the API faces) with what they do need, done here once: the
body read under `DATA_UPLOAD_MAX_MEMORY_SIZE` (413 otherwise), the request id (`X-Request-ID` when
valid, else a new one; on the response and in every log line), a JSON 500 in the face's error shape
for an unexpected exception, and the client's disconnect, which cancels the view (a streamed call
then settles for what it produced) as Django's handler does. The views and their responses are the
ordinary Django ones; everything else goes to the full site.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware

from .errors import InvalidRequest, RequestTooLarge, ServerError, error_response_for
from .logging import request_id_var
from .metrics import request_begin, request_end
from .middleware import request_id_for

logger = logging.getLogger("django.request")

View = Callable[[Any], Awaitable[HttpResponse]]


class LeanHeaders(dict):
    """Request headers by lower-cased name; `get` takes any case, as Django's `request.headers` does."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class LeanRequest(HttpRequest):
    """What the API views and the security checks read of a request: method, path, headers, body,
    the request id, and the META that Django's host, scheme and full-path methods read. Django's
    constructor (query dicts, upload handlers, META from every header) is not run."""

    def __init__(self, scope, *, headers: LeanHeaders, body: bytes, request_id: str):
        self.method = scope["method"]
        self.path = self.path_info = scope["path"]
        self.headers = headers
        self._body = body
        self.request_id = request_id
        self._scheme = scope.get("scheme", "http")
        server = scope.get("server") or ("", 80)
        self.META = {
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": headers.get("content-type", ""),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": server[0],
            "SERVER_PORT": str(server[1]),
        }
        for name in ("host", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port"):
            if name in headers:
                self.META["HTTP_" + name.upper().replace("-", "_")] = headers[name]

    def _get_scheme(self) -> str:
        return self._scheme

    async def auser(self):
        # No session on this path (a request carrying cookies goes to the full site): anonymous.
        return AnonymousUser()


class _TooLarge(Exception):
    pass


async def _read_body(receive, limit: int | None) -> bytes:
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooLarge()
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _headers(scope) -> LeanHeaders:
    headers = LeanHeaders()
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # Repeated headers are joined as HTTP allows (and as Django's META does).
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def _response_headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), str(value).encode("latin-1")) for name, value in response.items()]


class LeanApi:
    """ASGI app for `routes` ({path: async view}). The caller asks `serves(scope)` first: a path it
    does not serve, or a request with cookies (a dashboard session), belongs to the full site."""

    def __init__(self, routes: dict[str, View]):
        self.routes = routes
        # Django's own: the HTTPS redirect (SECURE_SSL_REDIRECT) and the security headers.
        self.security = SecurityMiddleware(lambda request: None)

    def serves(self, scope) -> bool:
        if scope["path"] not in self.routes:
            return False
        return not any(name == b"cookie" for name, _ in scope["headers"])

    async def __call__(self, scope, receive, send) -> None:
        headers = _headers(scope)
        request_id = request_id_for(headers.get("x-request-id", ""))
        request_id_var.set(request_id)
        path = scope["path"]
        request_begin(path)
        try:
            body = await _read_body(receive, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        except _TooLarge:
            request = LeanRequest(scope, headers=headers, body=b"", request_id=request_id)
            return await self._send(send, error_response_for(path, RequestTooLarge()), request)
        except asyncio.CancelledError:
            return None
        request = LeanRequest(scope, headers=headers, body=body, request_id=request_id)
        refused = self._refused(request)
        if refused is not None:
            return await self._send(send, refused, request)
        handling = asyncio.ensure_future(self._handle(request, send))
        watching = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({handling, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (handling, watching):
                if not task.done():
                    task.cancel()
            # A cancelled view still settles its call (shielded); wait for it to unwind.
            await asyncio.gather(handling, watching, return_exceptions=True)

    def _refused(self, request: LeanRequest) -> HttpResponse | None:
        """What the full site's middleware would answer instead of the view: 400 for a Host not in
        ALLOWED_HOSTS, the redirect to HTTPS."""
        try:
            request.get_host()
        except DisallowedHost:
            logger.warning("Invalid Host header on %s", request.path)
            return error_response_for(request.path, InvalidRequest("The Host header is not allowed."))
        return self.security.process_request(request)

    async def _handle(self, request: LeanRequest, send) -> None:
        try:
            response = await self.routes[request.path](request)
        except Exception:
            logger.exception("Internal Server Error: %s", request.path)
            response = error_response_for(request.path, ServerError())
        try:
            await self._send(send, response, request)
        except Exception:
            # Mid-stream: the status is sent already; the connection is closed unfinished.
            logger.exception("Internal Server Error while answering: %s", request.path)

    async def _send(self, send, response: HttpResponse, request: LeanRequest) -> None:
        self.security.process_response(request, response)
        response["X-Request-ID"] = request.request_id
        request_end(response.status_code)
        try:
            if not response.streaming:
                response["Content-Length"] = str(len(response.content))
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _response_headers(response),
                }
            )
            if not response.streaming:
                await send({"type": "http.response.body", "body": response.content})
                return
            # Closed however the relay ends (a disconnect cancels it): the stream settles then.
            async with aclosing(aiter(response)) as content:
                async for chunk in content:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            # A stream not relayed to its end is closed (and settled) here too. A plain response holds
            # nothing to close, and its close() would send Django's request_finished to every receiver.
            if response.streaming:
                response.close()


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
