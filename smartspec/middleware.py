"""Request ids, JSON errors on API paths (never an HTML error page there), and the
Content-Security-Policy of every HTML page.

Both middlewares work in sync and async mode, so the ASGI hot path never
hops to a thread just to pass through them.
"""

import re
import uuid

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware

from .errors import (
    APIError,
    AuthenticationError,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    ServerError,
    error_response_for,
    is_api_path,
)
from .logging import request_id_var
from .metrics import request_begin, request_end

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def request_id_for(incoming: str) -> str:
    """The caller's `X-Request-ID` when it is a valid one, else a new id."""
    return incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _start(request) -> None:
    request.request_id = request_id_for(request.headers.get("X-Request-ID", ""))
    request_id_var.set(request.request_id)
    request_begin(request.path)


@sync_and_async_middleware
def request_id_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            _start(request)
            response = await get_response(request)
            response["X-Request-ID"] = request.request_id
            request_end(response.status_code)
            return response

    else:

        def middleware(request):
            _start(request)
            response = get_response(request)
            response["X-Request-ID"] = request.request_id
            request_end(response.status_code)
            return response

    return middleware


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: RequestTooLarge,
}


def _too_large(request) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _as_json(request, response):
    """Replace an HTML error page on an API path by the JSON error shape."""
    if response.status_code < 400 or not is_api_path(request.path):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    if getattr(response, "streaming", False):
        return response
    error_cls = _BY_STATUS.get(response.status_code)
    error = error_cls() if error_cls else ServerError()
    if error_cls is None and response.status_code < 500:
        error.status = response.status_code
    json_response = error_response_for(request.path, error)
    if response.has_header("Allow"):
        json_response["Allow"] = response["Allow"]
    return json_response


@sync_and_async_middleware
def api_error_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            if is_api_path(request.path) and _too_large(request):
                return error_response_for(request.path, RequestTooLarge())
            return _as_json(request, await get_response(request))

    else:

        def middleware(request):
            if is_api_path(request.path) and _too_large(request):
                return error_response_for(request.path, RequestTooLarge())
            return _as_json(request, get_response(request))

    return middleware


def _with_csp(response):
    # Every HTML page, whichever app or Django itself rendered it; other types need none.
    if response.get("Content-Type", "").startswith("text/html") and "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
    return response


@sync_and_async_middleware
def content_security_policy_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _with_csp(await get_response(request))

    else:

        def middleware(request):
            return _with_csp(get_response(request))

    return middleware
