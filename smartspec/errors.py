"""One error shape for the whole API: OpenAI's `{"error": {"message", "type", "code"}}`.

Services raise the typed errors below; the DRF exception handler, the API
error middleware and the handler views render them. Messages are written by
us, never copied from an upstream body, so no secret can travel in one.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions as drf_exceptions

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")


class APIError(Exception):
    """Base of every error the API renders on purpose."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    default_message = "Invalid request."

    def __init__(self, message: str | None = None, *, code: str | None = None, extra=None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.extra = extra or {}
        super().__init__(self.message)

    def as_dict(self) -> dict:
        body = {"message": self.message, "type": self.type, "code": self.code}
        body.update(self.extra)
        return {"error": body}


class InvalidRequest(APIError):
    pass


class AuthenticationError(APIError):
    status, type, code = 401, "authentication_error", "invalid_api_key"
    default_message = "Invalid or missing API key."


class InsufficientCredits(APIError):
    status, type, code = 402, "insufficient_credits", "insufficient_credits"
    default_message = "Not enough credits for this request."


class Forbidden(APIError):
    status, type, code = 403, "permission_error", "forbidden"
    default_message = "You do not have permission to do this."


class NotFound(APIError):
    status, type, code = 404, "not_found_error", "not_found"
    default_message = "Not found."


class ModelNotFound(NotFound):
    code = "model_not_found"
    default_message = "Unknown model."


class ModelRetired(ModelNotFound):
    """The model was retired upstream; the body names its successor (`error.successor`) when known."""

    code = "model_retired"
    default_message = "This model was retired."

    def __init__(self, message: str | None = None, *, model: str = "", successor: str | None = None, **kw):
        kw.setdefault("extra", {"param": "model", "successor": successor})
        super().__init__(message, **kw)
        self.model = model
        self.successor = successor


class MethodNotAllowed(APIError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"
    default_message = "Method not allowed."


class Conflict(APIError):
    status, type, code = 409, "conflict_error", "conflict"
    default_message = "Conflict."


class RequestTooLarge(APIError):
    status, type, code = 413, "invalid_request_error", "request_too_large"
    default_message = "Request body too large."


class RateLimited(APIError):
    status, type, code = 429, "rate_limit_error", "rate_limited"
    default_message = "Rate limit exceeded."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UpstreamError(APIError):
    """An upstream attempt failed; `retryable` tells the router to try the next one."""

    status, type, code = 502, "upstream_error", "upstream_unavailable"
    default_message = "Every upstream attempt failed."
    retryable = True


class UpstreamRateLimited(UpstreamError):
    status, code = 429, "upstream_rate_limited"
    default_message = "The upstream provider is rate limiting."


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamModelGone(UpstreamUnavailable):
    """The upstream says it has no such model (removed, or renamed): another provider or the model's
    successor may still answer, and the provider itself answered correctly (not a health failure)."""

    status, type, code = 404, "not_found_error", "upstream_model_not_found"
    default_message = "The upstream provider does not serve this model."


class UpstreamTimeout(UpstreamError):
    status, code = 504, "upstream_timeout"
    default_message = "The upstream provider timed out."


class UpstreamBadRequest(UpstreamError):
    """The upstream rejected the request itself; another attempt would fail the same way."""

    status, type, code = 400, "invalid_request_error", "upstream_rejected_request"
    default_message = "The upstream provider rejected the request."
    retryable = False


class ServiceUnavailable(APIError):
    status, type, code = 503, "service_unavailable", "service_unavailable"
    default_message = "The service is temporarily unavailable."


class ServerError(APIError):
    status, type, code = 500, "server_error", "internal_error"
    default_message = "Internal server error."


def error_response(error: APIError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response["Retry-After"] = str(int(retry_after))
    if isinstance(error, AuthenticationError):
        # A 401 names the scheme to use (RFC 9110), which also tells clients 401 from 403.
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


# Anthropic's Messages API answers errors in its own shape, so its SDKs raise their own classes:
# `{"type": "error", "error": {"type", "message"}}`, the type chosen by the status.
ANTHROPIC_PATH_PREFIX = "/v1/messages"
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Every provider of the route is cooling down after repeated failures: Anthropic's "overloaded".
OVERLOADED_CODES = ("circuit_open",)


def anthropic_error_body(error: APIError) -> tuple[int, dict]:
    """(status, body) of `error` in Anthropic's shape; our `code` is its `details.error_code` (what the
    SDKs read as `error_code`)."""
    status = 529 if error.code in OVERLOADED_CODES else error.status
    kind = ANTHROPIC_ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    body = {"type": kind, "message": error.message, "details": {"error_code": error.code}}
    return status, {"type": "error", "error": body}


def anthropic_error_response(error: APIError) -> JsonResponse:
    status, body = anthropic_error_body(error)
    response = error_response(error)
    rendered = JsonResponse(body, status=status)
    for header in ("Retry-After", "WWW-Authenticate"):
        if response.has_header(header):
            rendered[header] = response[header]
    return rendered


def is_anthropic_path(path: str) -> bool:
    return path == ANTHROPIC_PATH_PREFIX or path.startswith(ANTHROPIC_PATH_PREFIX + "/")


def error_response_for(path: str, error: APIError) -> JsonResponse:
    """The error in the shape of the API that `path` belongs to."""
    return anthropic_error_response(error) if is_anthropic_path(path) else error_response(error)


def _from_drf(exc: drf_exceptions.APIException) -> APIError:
    detail = exc.detail
    if isinstance(exc, drf_exceptions.ValidationError):
        return InvalidRequest(_flatten(detail), code="invalid_request")
    mapping = {
        drf_exceptions.NotAuthenticated: AuthenticationError,
        drf_exceptions.AuthenticationFailed: AuthenticationError,
        drf_exceptions.PermissionDenied: Forbidden,
        drf_exceptions.NotFound: NotFound,
        drf_exceptions.MethodNotAllowed: MethodNotAllowed,
        drf_exceptions.Throttled: RateLimited,
    }
    for drf_cls, ours in mapping.items():
        if isinstance(exc, drf_cls):
            error = ours(str(detail))
            if isinstance(exc, drf_exceptions.Throttled):
                error.retry_after = exc.wait and int(exc.wait) + 1
            return error
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return InvalidRequest(str(detail), code="unsupported_media_type")
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidRequest(str(detail), code="invalid_json")
    error = APIError(str(detail), code=str(getattr(exc, "default_code", "error")))
    error.status = exc.status_code
    return error


def _flatten(detail, path: str = "") -> str:
    """Turn DRF's nested validation detail into one readable sentence."""
    if isinstance(detail, dict):
        parts = [_flatten(v, f"{path}.{k}" if path else str(k)) for k, v in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(_flatten(v, path) for v in detail)
    return f"{path}: {detail}" if path and path != "non_field_errors" else str(detail)


# The database or Redis cannot be reached: a 503 (fail closed), not a 500 (a bug). Integrity and
# programming errors are bugs and stay 500s.
BACKING_SERVICE_DOWN = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)


def as_api_error(exc: Exception) -> APIError | None:
    """Our error for an exception we know how to render, else None."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, BACKING_SERVICE_DOWN):
        logger.error("backing service unavailable: %s", type(exc).__name__)
        return ServiceUnavailable("A backing service is unavailable; try again shortly.")
    if isinstance(exc, drf_exceptions.APIException):
        return _from_drf(exc)
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, PermissionDenied):
        return Forbidden()
    if isinstance(exc, ValidationError):
        return InvalidRequest("; ".join(exc.messages))
    return None


def drf_exception_handler(exc, context):
    error = as_api_error(exc)
    if error is None:
        # Imported here: rest_framework.views imports the auth classes, which import this module.
        from rest_framework.views import exception_handler

        return exception_handler(exc, context)
    return error_response(error)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)
