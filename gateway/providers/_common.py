"""Helpers every adapter shares: JSON with exact money, usage sanity, HTTP status -> typed error.

The status policy, one place for every wire format:
- 429 -> `UpstreamRateLimited` (retryable, carries `retry_after` from `Retry-After`).
- 401/403 -> `UpstreamUnavailable`: our provider key is wrong or lacks access; another provider may
  work. The message never carries the upstream body (OpenAI's echoes part of the key).
- 402 -> `UpstreamUnavailable`: our account with that provider is out of credit, not the caller's.
- 404 -> `UpstreamUnavailable`, retryable: the usual cause is a model this provider does not serve
  (or no longer serves under that name) while the next provider in the route may.
- 408, 5xx, 529 (overloaded) -> `UpstreamUnavailable`; 504 -> `UpstreamTimeout`.
- Any other 4xx (400, 413, 422, ...) -> `UpstreamBadRequest`: the request itself was refused and
  would be refused again, so the router stops.
- An answer that says the model does not exist (OpenRouter's 400 "... is not a valid model ID",
  OpenAI's `model_not_found`, Anthropic's 404 `not_found_error`, Gemini's 404 `NOT_FOUND`; each adapter
  recognizes its own) -> `model_gone()`, an `UpstreamModelGone`: retryable, and routing may move an
  automatic choice to the model's successor. The provider answered correctly, so health is not hurt.
Every error carries `.provider`, `.upstream_status` and `.upstream_code` for the attempt log.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.providers.base import SHAPE_OPENAI, Usage
from smartspec.errors import (
    UpstreamBadRequest,
    UpstreamError,
    UpstreamModelGone,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def load_json(data: bytes | str, provider: str) -> Any:
    """Parse an upstream JSON body; numbers with a fraction become Decimal so `usage.cost` stays exact."""
    try:
        return json.loads(data, parse_float=Decimal)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise malformed(provider) from None


def malformed(provider: str) -> UpstreamUnavailable:
    return tag(
        UpstreamUnavailable(f"{provider} sent a malformed response.", code="upstream_malformed"), provider
    )


def tag(error: UpstreamError, provider: str, status: int | None = None, code: str | None = None):
    error.provider = provider
    error.upstream_status = status
    error.upstream_code = code
    return error


def stream_incomplete(provider: str) -> UpstreamUnavailable:
    """The error for a stream that ended without its finish marker (the answer may be cut short)."""
    return tag(
        UpstreamUnavailable(f"The stream from {provider} ended before the answer was complete."),
        provider,
        200,
        "stream_incomplete",
    )


def safe_code(value: Any) -> str | None:
    """An upstream error code short and plain enough to show (a token, never free text)."""
    if isinstance(value, int | str) and _SAFE_CODE.match(str(value)):
        return str(value)
    return None


def retry_after_seconds(headers: dict[str, str]) -> int | None:
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int((when - datetime.now(UTC)).total_seconds()))


def error_for_status(
    status: int, *, provider: str, headers: dict[str, str] | None = None, code: Any = None
) -> UpstreamError:
    """The typed error for an upstream HTTP status (policy in the module docstring)."""
    code = safe_code(code)
    detail = f"HTTP {status}" + (f", {code}" if code else "")
    error: UpstreamError
    if status == 429:
        error = UpstreamRateLimited(f"{provider} is rate limiting requests ({detail}).")
        error.retry_after = retry_after_seconds(headers or {})
    elif status in (401, 403):
        error = UpstreamUnavailable(f"{provider} refused the gateway's credentials ({detail}).")
    elif status == 402:
        error = UpstreamUnavailable(f"The gateway's {provider} account is out of credit ({detail}).")
    elif status == 404:
        error = UpstreamUnavailable(f"{provider} does not serve this model ({detail}).")
    elif status == 504:
        error = UpstreamTimeout(f"{provider} timed out ({detail}).")
    elif status == 408 or status >= 500:
        error = UpstreamUnavailable(f"{provider} is unavailable ({detail}).")
    elif 400 <= status < 500:
        error = UpstreamBadRequest(f"{provider} rejected the request ({detail}).")
    else:
        error = UpstreamUnavailable(f"{provider} answered with an unexpected status ({detail}).")
    return tag(error, provider, status, code)


def model_gone(status: int, *, provider: str, code: Any = None) -> UpstreamModelGone:
    """The typed error for "no such model" from an upstream (see the policy above)."""
    code = safe_code(code)
    error = UpstreamModelGone(
        f"{provider} does not serve this model (HTTP {status}" + (f", {code}" if code else "") + ")."
    )
    return tag(error, provider, status, code)


def token_count(value: Any) -> int | None:
    """A token count, or None when the upstream's figure is absent or nonsense. A count too large for
    the call is kept: pricing cuts it to the call's bounds (a larger claim never bills less)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def usd(value: Any) -> Decimal | None:
    """An upstream USD figure as an exact Decimal, or None when absent or nonsense (negative, NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        try:
            value = Decimal(str(value))
        except InvalidOperation:
            return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        return None
    return value


def make_usage(
    prompt: Any,
    completion: Any,
    cost: Any = None,
    *,
    cached: Any = None,
    cache_write_5m: Any = None,
    cache_write_1h: Any = None,
    reasoning: Any = None,
    shape: str = SHAPE_OPENAI,
) -> Usage | None:
    """Usage from normalized raw counts (details are parts of the totals, see `Usage`); None when
    either total is missing or nonsense, so the caller estimates.

    A detail that is absent or nonsense counts as 0 (the tokens are then priced as plain ones), and
    details are clamped so they never add up to more than their total."""
    prompt_tokens, completion_tokens = token_count(prompt), token_count(completion)
    if prompt_tokens is None or completion_tokens is None:
        return None
    left = prompt_tokens
    parts = []
    for value in (cached, cache_write_5m, cache_write_1h):
        part = min(token_count(value) or 0, left)
        left -= part
        parts.append(part)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=usd(cost),
        cached_tokens=parts[0],
        cache_write_5m_tokens=parts[1],
        cache_write_1h_tokens=parts[2],
        reasoning_tokens=min(token_count(reasoning) or 0, completion_tokens),
        shape=shape,
    )


def text_of(content: Any) -> str:
    """The text of an OpenAI message `content`: a string, or a list of parts of which the text ones count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return str(content)


def split_data_url(url: str) -> tuple[str, str] | None:
    """(`media type`, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return head or "application/octet-stream", data
