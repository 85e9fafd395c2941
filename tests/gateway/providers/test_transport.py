"""The shared transport: SSE framing, network failure mapping, per-loop clients, the real aiohttp path."""

import asyncio
import gzip
import logging
import socket

import httpx
import pytest

from gateway import transport
from gateway.providers import provider_call, provider_stream
from gateway.providers.base import WIRE_OPENAI_COMPAT, ChatRequest, UpstreamRequest
from gateway.transport import SSEDecoder, SSEEvent
from smartspec.errors import UpstreamTimeout, UpstreamUnavailable
from tests.gateway.providers.helpers import fixture_bytes, make_config

REQUEST = ChatRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def decode(text: str) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [decoder.feed_line(line) for line in text.splitlines()]
    return [e for e in events if e is not None]


# --- SSE framing --------------------------------------------------------------


def test_sse_comments_multiline_data_and_event_names():
    events = decode(
        ": OPENROUTER PROCESSING\n"
        "\n"
        "event: message_start\n"
        'data: {"a":\n'
        "data: 1}\n"
        "\n"
        "data:no-space\n"
        "id: 7\n"
        "retry: 100\n"
        "\n"
        "event: ping\n"
        "\n"  # an event with no data is not dispatched
        "data: [DONE]\n"
        "\n"
    )
    assert events == [
        SSEEvent(event="message_start", data='{"a":\n1}'),
        SSEEvent(event=None, data="no-space"),
        SSEEvent(event=None, data="[DONE]"),
    ]


def test_sse_crlf_lines_and_unterminated_last_event():
    decoder = SSEDecoder()
    out = [decoder.feed_line(line) for line in ["data: one\r", "\r", "data: cut-short"]]
    assert [e for e in out if e] == [SSEEvent(event=None, data="one")]


# --- failure mapping (mocked transport) ---------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), UpstreamUnavailable),
        (httpx.ConnectTimeout("timed out"), UpstreamTimeout),
        (httpx.ReadTimeout("timed out"), UpstreamTimeout),
        (httpx.PoolTimeout("pool"), UpstreamTimeout),
        (httpx.RemoteProtocolError("peer closed connection"), UpstreamUnavailable),
        (httpx.ReadError("reset"), UpstreamUnavailable),
    ],
)
async def test_network_failures_map_to_typed_retryable_errors(exc, expected, caplog):
    def fail(request):
        raise exc

    transport.set_transport_for_tests(httpx.MockTransport(fail))
    try:
        config = make_config("openai", WIRE_OPENAI_COMPAT, "https://openai.test/v1")
        with caplog.at_level(logging.DEBUG), pytest.raises(expected) as info:
            await provider_call(config, REQUEST)
    finally:
        transport.set_transport_for_tests(None)
    assert info.value.retryable
    assert info.value.provider == "openai"
    assert info.value.upstream_status is None  # no answer came back
    assert "SECRET" not in info.value.message
    assert "SECRET" not in caplog.text
    assert str(exc) not in info.value.message


def test_one_transport_per_event_loop():
    async def client_pair():
        return transport.get_transport(), transport.get_transport()

    loop_a, loop_b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a1, a2 = loop_a.run_until_complete(client_pair())
        b1, _ = loop_b.run_until_complete(client_pair())
        assert a1 is a2
        assert a1 is not b1
        assert isinstance(a1, httpx.AsyncBaseTransport)
    finally:
        for loop in (loop_a, loop_b):
            loop.run_until_complete(transport.transport_close())
            loop.close()


# --- the real aiohttp transport against a local server ------------------------


class LocalServer:
    """A bare HTTP/1.1 server on 127.0.0.1 that answers with `respond(writer)`."""

    def __init__(self, respond):
        self.respond = respond
        self.server = None
        self.requests: list[bytes] = []
        self.connections = 0
        self.handlers: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        await transport.transport_close()
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _handle(self, reader, writer):
        self.connections += 1
        self.handlers.add(asyncio.current_task())
        try:
            while True:  # keep-alive: one connection serves request after request
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                await self.respond(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def config(self, **kwargs):
        return make_config("openai", WIRE_OPENAI_COMPAT, f"http://127.0.0.1:{self.port}/v1", **kwargs)


@pytest.fixture
def real_network():
    transport.set_transport_for_tests(None)
    assert transport._test_transport is None


def json_answer(body: bytes, headers: bytes = b""):
    """A LocalServer responder: 200 with this JSON body (and any extra header lines)."""

    async def respond(writer):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + headers
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return respond


async def test_real_transport_round_trip_and_pooled_connection(real_network):
    async with LocalServer(json_answer(fixture_bytes("openai_chat.json"))) as server:
        result = await provider_call(server.config(), REQUEST)
        assert type(transport.get_transport()).__name__ == "AiohttpTransport"
        second = await provider_call(server.config(), REQUEST)
    assert result.content == second.content == "Hello! How can I assist you today?"
    assert len(server.requests) == 2
    assert server.connections == 1  # the second call reused the pooled connection
    assert b"authorization: bearer key-openai-secret" in server.requests[0].lower()
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1")


async def test_real_transport_offers_only_what_it_decodes_and_decodes_it(real_network):
    """A gzip answer is decoded (the network path hands it to aiohttp, which decodes); the request
    offers only encodings aiohttp can decode, not every one httpx could."""
    from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD

    body = gzip.compress(fixture_bytes("openai_chat.json"))
    async with LocalServer(json_answer(body, b"content-encoding: gzip\r\n")) as server:
        result = await provider_call(server.config(), REQUEST)
    assert result.content == "Hello! How can I assist you today?"
    offered = ["gzip", "deflate"] + ["br"] * HAS_BROTLI + ["zstd"] * HAS_ZSTD
    assert f"accept-encoding: {', '.join(offered)}\r\n".encode() in server.requests[0].lower()


async def test_real_transport_connection_refused_is_unavailable(real_network):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = make_config("openai", WIRE_OPENAI_COMPAT, f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(UpstreamUnavailable) as info:
            await provider_call(config, REQUEST)
    finally:
        await transport.transport_close()
    assert info.value.message == "Could not connect to openai."


async def test_real_transport_read_timeout(real_network):
    async def never_answer(writer):
        await asyncio.sleep(5)

    async with LocalServer(never_answer) as server:
        with pytest.raises(UpstreamTimeout):
            await provider_call(server.config(read_timeout=0.3), REQUEST)


async def test_real_transport_stream_cut_midway(real_network):
    first_event = (
        b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini",'
        b'"choices":[{"index":0,"delta":{"content":"Half"},"finish_reason":null}]}\n\n'
    )

    async def cut(writer):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + f"{len(first_event):x}\r\n".encode()
            + first_event
            + b"\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()  # gone without the terminating chunk

    async with LocalServer(cut) as server:
        received = []
        with pytest.raises(UpstreamUnavailable):
            async for delta in provider_stream(server.config(), REQUEST):
                received.append(delta)
    assert [d.content for d in received] == ["Half"]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\n{}",  # bad status line
        b"HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 2\r\n\r\n{}",  # bad header line
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",  # bad chunk size
    ],
)
async def test_real_transport_malformed_answer_is_an_upstream_failure(real_network, answer):
    """An answer that is not HTTP is the provider failing (retryable: the next provider is tried),
    never an unexpected error."""

    async def respond(writer):
        writer.write(answer)
        await writer.drain()

    async with LocalServer(respond) as server:
        with pytest.raises(UpstreamUnavailable) as info:
            await provider_call(server.config(), REQUEST)
    assert info.value.retryable and info.value.message == "The connection to openai failed."


async def test_real_transport_stream_with_a_charset_that_is_not_text_reads_utf8(real_network):
    """`charset=base64` (a bytes-to-bytes codec) is no text encoding: the stream is read as UTF-8."""
    event = (
        'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini",'
        '"choices":[{"index":0,"delta":{"content":"Grüß"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    ).encode()

    async def respond(writer):
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=base64\r\n"
            + f"content-length: {len(event)}\r\n\r\n".encode()
            + event
        )
        await writer.drain()

    async with LocalServer(respond) as server:
        received = [delta.content async for delta in provider_stream(server.config(), REQUEST)]
    assert "".join(c for c in received if c) == "Grüß"


async def test_send_returns_status_headers_body(upstream):
    upstream.respond(httpx.Response(418, headers={"X-Thing": "1"}, content=b"teapot"))
    response = await transport.send(
        UpstreamRequest(
            method="POST", url="https://x.test/a", headers={"authorization": "Bearer k"}, json={"a": 1}
        ),
        provider="x",
        connect_timeout=1,
        read_timeout=1,
    )
    assert (response.status, response.headers["x-thing"], response.body) == (418, "1", b"teapot")
    assert upstream.last.content == b'{"a":1}'
