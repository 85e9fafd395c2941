"""The one pooled async HTTP client every provider call goes through.

Adapters only build and parse; this module does the I/O: it sends a JSON
request and returns `(status, headers, body)`, or opens a response stream and
yields its server-sent events. Network failures come out as our typed
`UpstreamError`s (connect refused -> `UpstreamUnavailable`, connect/read
timeout -> `UpstreamTimeout`, broken connection or protocol -> `UpstreamUnavailable`),
with messages we write ourselves: request headers carry provider keys, so
neither they nor httpx's exception text reach a message or a log line.

One transport exists per event loop (uvicorn runs one loop per worker; tests and
`async_to_sync` may run others, and a pooled connection cannot cross loops): the
`httpx-aiohttp` transport, whose aiohttp session served 3x the requests per
second of httpx's own pool on this machine (issue 4). On the network, requests
go to that session directly: building an `httpx.Request` and wrapping aiohttp's
answer in an `httpx.Response` cost more CPU per call than aiohttp's own work
(460-500 against 206 µs per call, docs/PERFORMANCE.md). Its errors are raised as
httpx's, by httpx-aiohttp's own mapping (plus an answer aiohttp cannot parse, as a
protocol error), so one set of rules below turns them into ours. A transport set
for tests gets the same requests as `httpx.Request`s (`handle_async_request`,
httpx's transport API). Both send the headers an `httpx.AsyncClient` sends by
default, except that the network path offers only the encodings aiohttp decodes,
and both read repeated answer headers joined, as httpx does. aiohttp decodes one
content encoding (`gzip, gzip` stays compressed once) and reads header bytes that
are not UTF-8 as escapes; no provider sends either. `transport_close()` closes the
current loop's transport (ASGI lifespan shutdown, or the end of a short-lived loop).

Tests swap the network out in one line, for every provider call in the process:

    transport.set_transport_for_tests(httpx.MockTransport(handler))
    ...
    transport.set_transport_for_tests(None)   # back to the real network

A respx router works the same way: `httpx.MockTransport(router.async_handler)`.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import orjson
from django.conf import settings
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from gateway.providers._common import tag
from gateway.providers.base import UpstreamRequest
from smartspec.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from smartspec.urlsafety import GuardedResolver

logger = logging.getLogger(__name__)

# No real answer comes near these; an upstream that sends more is not answering, and a worker's memory
# must not grow with what a hostile or broken upstream sends.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_EVENT_CHARS = 8 * 1024 * 1024
# SSE ends a line at CRLF, LF or CR, and nowhere else (JSON may hold a raw U+2028).
_NEWLINE = re.compile(r"\r\n|\n|\r")

# Generous: one worker multiplexes many slow streams; keep-alive saves a TLS handshake per call.
LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0)

_transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = (
    weakref.WeakKeyDictionary()
)
_test_transport: httpx.AsyncBaseTransport | None = None
# What an `httpx.AsyncClient` sends on every request unless told otherwise (names lower-cased),
# taken from a client's own defaults: it offers only the encodings this install can decode (zstd
# only with the optional `zstandard`), and the answer is decoded by httpx. The client is built on a
# bare transport: its default one (an SSL context, proxies from the environment) took 70 ms of
# every worker's start-up, for headers that do not depend on it.
_DEFAULT_HEADERS = {
    name.lower(): value
    for name, value in httpx.AsyncClient(
        transport=httpx.AsyncBaseTransport(), trust_env=False
    ).headers.items()
}


# The network path's answers are decoded by aiohttp, not by httpx: aiohttp offers what it decodes
# itself (its default Accept-Encoding) when the request names none.
_AIOHTTP_HEADERS = {name: value for name, value in _DEFAULT_HEADERS.items() if name != "accept-encoding"}


@dataclass(frozen=True, slots=True)
class TransportResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None  # the `event:` field, None when the server sent none
    data: str


def set_transport_for_tests(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every provider call through `transport` (None restores the network)."""
    global _test_transport
    _test_transport = transport
    _transports.clear()


def _allow_private() -> bool:
    return bool(settings.ALLOW_PRIVATE_BASE_URLS)


def _aiohttp_session() -> aiohttp.ClientSession:
    """aiohttp's session with every connect's addresses checked (smartspec.urlsafety.GuardedResolver)."""
    connector = aiohttp.TCPConnector(
        limit=LIMITS.max_connections or 0,
        keepalive_timeout=LIMITS.keepalive_expiry,
        ssl=httpx.create_ssl_context(),
        resolver=GuardedResolver(_allow_private),
    )
    return aiohttp.ClientSession(connector=connector)


def get_transport() -> httpx.AsyncBaseTransport:
    """The shared transport of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    transport = _transports.get(loop)
    if transport is None:
        transport = _test_transport or AiohttpTransport(limits=LIMITS, client=_aiohttp_session)
        _transports[loop] = transport
    return transport


async def transport_close() -> None:
    """Close the running loop's transport and its pooled connections."""
    transport = _transports.pop(asyncio.get_running_loop(), None)
    if transport is not None:
        await transport.aclose()


class _AiohttpAnswer:
    """An aiohttp answer, read through the part of `httpx.Response` this module uses (status_code,
    headers, aiter_bytes, aiter_text, aclose); aiohttp's errors come out as httpx's."""

    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status_code = response.status
        # As httpx.Headers reads them: a repeated header's values joined with ", ".
        headers: dict[str, str] = {}
        for name, value in response.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with _aiohttp_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aiter_text(self) -> AsyncIterator[str]:
        # As httpx decodes text: the declared charset (else UTF-8), bad bytes replaced. A charset
        # that is not a text encoding (base64, zlib: bytes to bytes) is no charset.
        try:
            codec = codecs.lookup(self._response.charset or "utf-8")
        except LookupError:
            codec = None
        if codec is None or not codec._is_text_encoding:
            codec = codecs.lookup("utf-8")
        decoder = codec.incrementaldecoder(errors="replace")
        async for chunk in self.aiter_bytes():
            if text := decoder.decode(chunk):
                yield text
        if text := decoder.decode(b"", final=True):
            yield text

    async def aclose(self) -> None:
        # Back to the pool when it was read to its end, else its connection is closed.
        with _aiohttp_errors():
            self._response.release()
            await self._response.wait_for_close()


@contextmanager
def _aiohttp_errors() -> Iterator[None]:
    """aiohttp's errors as httpx's (httpx-aiohttp's mapping), and an answer aiohttp could not parse
    (a bad status line, header or chunk size: `ClientResponseError`, which that mapping leaves out)
    as httpx's protocol error, so it is an upstream failure like a broken connection."""
    try:
        with map_aiohttp_exceptions():
            yield
    except aiohttp.ClientResponseError as exc:
        raise httpx.RemoteProtocolError(f"malformed answer ({type(exc).__name__})") from exc


def _session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    if not isinstance(transport.client, aiohttp.ClientSession):
        transport.client = transport.get_client()
    return transport.client


async def _open(
    upstream: UpstreamRequest, connect_timeout: float, read_timeout: float
) -> httpx.Response | _AiohttpAnswer:
    """Send the request; the answer's body is still to be read (and the answer closed)."""
    transport = get_transport()
    if not isinstance(transport, AiohttpTransport):
        return await transport.handle_async_request(_build(upstream, connect_timeout, read_timeout))
    headers, content = _encoded(upstream, _AIOHTTP_HEADERS)
    with _aiohttp_errors():
        response = await _session(transport).request(
            upstream.method,
            upstream.url,
            headers=headers,
            data=content,
            allow_redirects=False,
            # The timeouts as httpx-aiohttp gives them to aiohttp.
            timeout=aiohttp.ClientTimeout(
                sock_connect=connect_timeout, sock_read=read_timeout, connect=connect_timeout
            ),
        )
    return _AiohttpAnswer(response)


def _json_default(value: Any) -> Any:
    # Money figures (e.g. OpenRouter's max_price) stay exact: written as the number's own digits.
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _encoded(upstream: UpstreamRequest, defaults: dict[str, str]) -> tuple[dict[str, str], bytes | None]:
    """The request's headers (over `defaults`, names lower-cased) and its body."""
    headers = defaults | {name.lower(): value for name, value in upstream.headers.items()}
    content = None
    if upstream.json is not None:
        content = orjson.dumps(upstream.json, default=_json_default)
        headers.setdefault("content-type", "application/json")
    return headers, content


def _build(upstream: UpstreamRequest, connect_timeout: float, read_timeout: float) -> httpx.Request:
    headers, content = _encoded(upstream, _DEFAULT_HEADERS)
    # The timeouts as httpx's client would pass them to its transport.
    timeout = {
        "connect": connect_timeout,
        "read": read_timeout,
        "write": read_timeout,
        "pool": connect_timeout,
    }
    return httpx.Request(
        upstream.method, upstream.url, headers=headers, content=content, extensions={"timeout": timeout}
    )


def _oversized(provider: str) -> UpstreamError:
    error = UpstreamUnavailable(f"{provider} sent more than any answer can be.")
    tag(error, provider)
    logger.warning("upstream %s: answer over the size bound, dropped", provider)
    return error


async def _read_bounded(response: httpx.Response | _AiohttpAnswer, provider: str) -> bytes:
    """The whole body, refused once it passes `MAX_BODY_BYTES` (read no further)."""
    parts, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _oversized(provider)
        parts.append(chunk)
    return b"".join(parts)


def _map_exception(exc: httpx.HTTPError, provider: str) -> UpstreamError:
    """Our error for a network failure; the message names the provider, never the request."""
    if isinstance(exc, httpx.ConnectTimeout):
        # httpx-aiohttp reports every aiohttp connection error as ConnectTimeout; the cause tells them apart.
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, TimeoutError):
            error: UpstreamError = UpstreamUnavailable(f"Could not connect to {provider}.")
        elif cause is None or isinstance(cause, TimeoutError):
            error = UpstreamTimeout(f"Timed out connecting to {provider}.")
        else:
            error = UpstreamUnavailable(f"The connection to {provider} failed.")
    elif isinstance(exc, httpx.TimeoutException):
        error = UpstreamTimeout(f"{provider} did not answer in time.")
    elif isinstance(exc, httpx.ConnectError):
        error = UpstreamUnavailable(f"Could not connect to {provider}.")
    else:
        error = UpstreamUnavailable(f"The connection to {provider} failed.")
    tag(error, provider)
    logger.warning("upstream %s: %s (%s)", provider, error.code, type(exc).__name__)
    return error


def _past_deadline(provider: str, seconds: float | None) -> UpstreamError:
    """An attempt over its total deadline (bytes trickling in keep the read timeout from firing)."""
    error = UpstreamTimeout(f"{provider} did not finish within {seconds:g} s.", code="upstream_deadline")
    tag(error, provider)
    logger.warning("upstream %s: past its %g s deadline", provider, seconds)
    return error


async def send(
    upstream: UpstreamRequest,
    *,
    provider: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: float | None = None,
) -> TransportResponse:
    """Send one request and read the whole answer, all of it within `deadline` seconds."""
    try:
        async with asyncio.timeout(deadline):
            response = await _open(upstream, connect_timeout, read_timeout)
            try:
                body = await _read_bounded(response, provider)
            finally:
                await response.aclose()
    except httpx.HTTPError as exc:
        raise _map_exception(exc, provider) from None
    except TimeoutError:
        raise _past_deadline(provider, deadline) from None
    return TransportResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=body,
    )


class StreamResponse:
    """An open streamed answer: its status and headers, then either its body or its events."""

    def __init__(
        self,
        response: httpx.Response | _AiohttpAnswer,
        provider: str,
        *,
        first_event_by: float | None = None,
        ends_by: float | None = None,
        limits: tuple[float | None, float | None] = (None, None),
    ):
        self._response = response
        self._provider = provider
        # Loop times: the first event must arrive by the first, the stream must end by the second.
        self._first_event_by = first_event_by
        self._ends_by = ends_by
        self._limits = limits
        self._started = False
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._ends_by):
                return await _read_bounded(self._response, self._provider)
        except httpx.HTTPError as exc:
            raise _map_exception(exc, self._provider) from None
        except TimeoutError:
            raise _past_deadline(self._provider, self._limits[1]) from None

    def _due(self, started: bool) -> tuple[float | None, float | None]:
        """(loop time by which the next read must come, the limit in seconds it stands for)."""
        due = [(self._ends_by, self._limits[1])]
        if not started:
            due.append((self._first_event_by, self._limits[0]))
        due = [d for d in due if d[0] is not None]
        return min(due, key=lambda d: d[0]) if due else (None, None)

    async def _texts(self) -> AsyncIterator[str]:
        """The body as text, each read bounded by the deadlines (a trickle cannot hold the stream)."""
        loop = asyncio.get_running_loop()
        reads = self._response.aiter_text().__aiter__()
        while True:
            due, limit = self._due(self._started)
            try:
                async with asyncio.timeout_at(due):
                    text = await reads.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _past_deadline(self._provider, limit) from None
            if due is not None and loop.time() >= due:
                raise _past_deadline(self._provider, limit)
            yield text

    async def events(self) -> AsyncIterator[SSEEvent]:
        """The stream's events as they arrive; memory stays bounded by one event (`MAX_EVENT_CHARS`)."""
        decoder = SSEDecoder()
        pending = ""
        self._started = False
        try:
            async for text in self._texts():
                pending += text
                start = 0
                for match in _NEWLINE.finditer(pending):
                    if match.group() == "\r" and match.end() == len(pending):
                        break  # maybe the first half of a CRLF split across reads
                    event = decoder.feed_line(pending[start : match.start()])
                    start = match.end()
                    if event is not None:
                        self._started = True
                        yield event
                pending = pending[start:]
                if len(pending) + decoder.size > MAX_EVENT_CHARS:
                    raise _oversized(self._provider)
        except httpx.HTTPError as exc:
            raise _map_exception(exc, self._provider) from None
        # A last event not closed by a blank line is dropped, as the SSE spec says: it may be cut short.


@asynccontextmanager
async def open_stream(
    upstream: UpstreamRequest,
    *,
    provider: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: float | None = None,
    stream_deadline: float | None = None,
) -> AsyncIterator[StreamResponse]:
    """Open a streamed request; the connection is released when the block exits, however it exits.
    Its first event must arrive within `deadline` seconds, and the whole stream end within
    `stream_deadline` (an `UpstreamTimeout` otherwise)."""
    now = asyncio.get_running_loop().time()
    first_by = None if deadline is None else now + deadline
    ends_by = None if stream_deadline is None else now + stream_deadline
    try:
        async with asyncio.timeout_at(first_by):
            response = await _open(upstream, connect_timeout, read_timeout)
    except httpx.HTTPError as exc:
        raise _map_exception(exc, provider) from None
    except TimeoutError:
        raise _past_deadline(provider, deadline) from None
    try:
        yield StreamResponse(
            response, provider, first_event_by=first_by, ends_by=ends_by, limits=(deadline, stream_deadline)
        )
    finally:
        await response.aclose()


class SSEDecoder:
    """Server-sent events framing (WHATWG): fields per line, `:` comments, blank line dispatches.

    Multi-line `data:` fields are joined with newlines; `id` and `retry` are ignored (we never reconnect).
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self.size = 0  # characters of the event being read

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = None
                return None
            event = SSEEvent(event=self._event, data="\n".join(self._data))
            self._event, self._data, self.size = None, [], 0
            return event
        if line.startswith(":"):
            return None  # comment, e.g. OpenRouter's ": OPENROUTER PROCESSING" keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self.size += len(value) + 1
        elif name == "event":
            self._event = value or None
        return None
