"""A fault-injecting fake upstream: a real HTTP/1.1 server on a local port, so the gateway's real
transport (httpx over aiohttp, its timeouts and its error mapping) runs end to end.

One server plays several providers, told apart by the first path segment
(`http://127.0.0.1:<port>/openrouter/api/v1`, `.../openai/v1`). Each provider has a script: a list
of fault names served in order, the last one repeating. Faults:

    ok            200 with the provider's real JSON answer (OpenRouter carries `usage.cost`)
    slow_ok       the same after 0.2 s (so concurrent calls overlap)
    ok_stream     200 SSE, chunked, with OpenRouter's usage chunk and [DONE]
    400           the upstream rejects the request itself (not the provider's fault)
    429           429 with `Retry-After: 7` and OpenRouter's error body
    500, 503      server errors with the provider's error body
    not_json      200 `application/json` whose body is an HTML error page
    usage_*       200 with missing or nonsense usage (see BAD_USAGE)
    read_timeout  accepts and reads the request, then answers nothing for `stall` seconds
    stream_cut    starts an SSE answer, sends two content chunks, then drops the connection mid-chunk
    stream_stall  starts an SSE answer, sends two content chunks, then goes silent for `stall` seconds
    stream_endless      an SSE answer of one-word chunks that never ends (until the gateway hangs up)
    stream_endless_big  the same with 64 KB chunks
    late_ok, late_stream  `ok` / `ok_stream` after `stall` seconds (a call in flight for a while);
                  `late` is either, as the request asks
    trickle       200 with the provider's real JSON answer, one byte every `trickle_gap` seconds (each read
                  arrives well within the read timeout; only a total deadline stops it)
    stream_trickle  200 SSE that sends one keep-alive comment byte every `trickle_gap` seconds, no event
    stream_trickle_events  200 SSE whose content chunks come every `trickle_gap` seconds, never ending
    usage_absurd  200 claiming 9,999,999 completion tokens; `cost_999` claims a cost of $999

Models named in `gone_models` are answered as OpenRouter answers a removed model, whatever the script:
400 `{"error": {"message": "<id> is not a valid model ID", "code": 400}}`.

`refused_url()` is an address where nothing listens; `blackhole_url()` one whose accept queue is full,
so a connect never completes (a connect timeout, without leaving the machine).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field

CONTENT = ("Hello", " from", " the", " fake", " upstream")
STREAM_PIECES = ("x" * 40, "y" * 40, "z" * 40)
# OpenRouter's cost is a JSON number; written as text so no float is involved.
OPENROUTER_COST = "0.000125"


# Nonsense usage an upstream may send; the gateway must never bill it as zero or negative.
BAD_USAGE = {
    "usage_missing": None,
    "usage_negative": '{"prompt_tokens": -14, "completion_tokens": -9, "total_tokens": -23, "cost": -0.5}',
    "usage_zero": '{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0}',
    "cost_huge": '{"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23, "cost": 1e30}',
    "usage_strings": '{"prompt_tokens": "14", "completion_tokens": "nine", "cost": "free"}',
}
# Usage that is well-formed but far beyond what the call could use: billed at most its hold.
ABSURD_USAGE = {
    "usage_absurd": '{"prompt_tokens": 14, "completion_tokens": 9999999, "total_tokens": 10000013}',
    "usage_huge": '{"prompt_tokens": 14, "completion_tokens": 90000000000, "total_tokens": 90000000014}',
    "cost_999": '{"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23, "cost": 999}',
}
ENDLESS_PIECE = {"stream_endless": "word ", "stream_endless_big": "x" * 65536}


def openrouter_body(model: str, usage: str | None = "") -> bytes:
    """`usage`: "" for the real usage, None to leave it out, else the raw JSON to put in its place."""
    text = json.dumps(
        {
            "id": "gen-1761234567-FaUlTiNjEcT",
            "provider": "OpenAI",
            "model": model,
            "object": "chat.completion",
            "created": 1761234567,
            "choices": [
                {
                    "logprobs": None,
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(CONTENT), "refusal": None},
                }
            ],
            "usage": {
                "prompt_tokens": 14,
                "completion_tokens": 9,
                "total_tokens": 23,
                "cost": "COST",
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0},
                "cost_details": {"upstream_inference_cost": None},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )
    text = text.replace('"COST"', OPENROUTER_COST)
    if usage is None:
        text = text[: text.index(', "usage"')] + "}"
    elif usage:
        text = text[: text.index('"usage": ') + len('"usage": ')] + usage + "}"
    return text.encode()


def openai_body(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Direct hello", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 20,
                "completion_tokens": 10,
                "total_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035",
        }
    ).encode()


def error_body(status: int, message: str) -> bytes:
    # OpenRouter's error shape; OpenAI's is {"error": {"message", "type", "code"}} and parses alike.
    return json.dumps({"error": {"code": status, "message": message, "metadata": {}}}).encode()


def sse_chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    chunk = {
        "id": "gen-1761234567-StReAm",
        "provider": "OpenAI",
        "model": model,
        "object": "chat.completion.chunk",
        "created": 1761234567,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def sse_usage(model: str, completion_tokens: int) -> bytes:
    usage = {
        "id": "gen-1761234567-StReAm",
        "provider": "OpenAI",
        "model": model,
        "object": "chat.completion.chunk",
        "created": 1761234567,
        "choices": [],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": completion_tokens,
            "total_tokens": 10 + completion_tokens,
            "cost": "COST",
        },
    }
    return b"data: " + json.dumps(usage).replace('"COST"', "0.000042").encode() + b"\n\n"


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@dataclass
class Seen:
    provider: str
    path: str
    body: dict


@dataclass
class FakeUpstream:
    """The server's scripts and what it saw; `stall` is how long the silent faults stay silent."""

    stall: float = 3.0
    trickle_gap: float = 0.1  # seconds between two bytes of the trickle faults
    # Bytes of content each endless stream sent before the gateway hung up, and whether it did.
    endless_sent: list[int] = field(default_factory=list)
    scripts: dict[str, list[str]] = field(default_factory=dict)
    gone_models: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socketserver.ThreadingTCPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- control ----------------------------------------------------------
    def script(self, provider: str, *faults: str) -> None:
        with self._lock:
            self.scripts[provider] = list(faults)

    def url(self, provider: str, suffix: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{provider}{suffix}"

    def count(self, provider: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if provider in (None, s.provider))

    def _next(self, provider: str) -> str:
        with self._lock:
            script = self.scripts.get(provider) or ["503"]
            return script.pop(0) if len(script) > 1 else script[0]

    def start(self) -> FakeUpstream:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                fake._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- serving ----------------------------------------------------------
    def _read_request(self, sock: socket.socket) -> tuple[str, dict] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                return None
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            part = sock.recv(65536)
            if not part:
                return None
            body += part
        return path, (json.loads(body) if body else {})

    def _silent(self) -> None:
        self._stop.wait(self.stall)

    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        request = self._read_request(sock)
        if request is None:
            return
        path, body = request
        provider = path.strip("/").split("/", 1)[0]
        with self._lock:
            self.seen.append(Seen(provider=provider, path=path, body=body))
        model = body.get("model") or "openai/gpt-4o"
        fault = "not_a_valid_model" if model in self.gone_models else self._next(provider)
        if fault == "late":
            fault = "late_stream" if body.get("stream") else "late_ok"
        try:
            self._serve(sock, fault, provider, model)
        except OSError:
            pass  # the gateway hung up first (it timed out): nothing to answer

    def _send(self, sock, status: int, reason: str, body: bytes, headers: dict | None = None) -> None:
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **(headers or {})}.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def _serve(self, sock: socket.socket, fault: str, provider: str, model: str) -> None:
        if fault == "slow_ok":
            time.sleep(0.2)
            fault = "ok"
        if fault in ("late_ok", "late_stream"):
            self._silent()
            fault = "ok" if fault == "late_ok" else "ok_stream"
        if fault in BAD_USAGE or fault in ABSURD_USAGE:
            self._send(sock, 200, "OK", openrouter_body(model, {**BAD_USAGE, **ABSURD_USAGE}[fault]))
        elif fault in ENDLESS_PIECE:
            self._endless(sock, model, ENDLESS_PIECE[fault])
        elif fault == "ok":
            body = openrouter_body(model) if provider == "openrouter" else openai_body(model)
            self._send(sock, 200, "OK", body)
        elif fault == "429":
            self._send(
                sock, 429, "Too Many Requests", error_body(429, "Rate limit exceeded"), {"Retry-After": "7"}
            )
        elif fault == "400":
            self._send(sock, 400, "Bad Request", error_body(400, "Invalid request: context length exceeded"))
        elif fault == "not_a_valid_model":
            self._send(sock, 400, "Bad Request", error_body(400, f"{model} is not a valid model ID"))
        elif fault in ("500", "503"):
            self._send(sock, int(fault), "Error", error_body(int(fault), "Upstream is having trouble"))
        elif fault == "trickle":
            body = openrouter_body(model) if provider == "openrouter" else openai_body(model)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode())
            for i in range(len(body)):
                if self._stop.wait(self.trickle_gap):
                    return
                sock.sendall(body[i : i + 1])
        elif fault in ("stream_trickle", "stream_trickle_events"):
            head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            sock.sendall(head.encode())
            piece = (
                _chunked(b":") if fault == "stream_trickle" else _chunked(sse_chunk(model, {"content": "x"}))
            )
            stop_at = time.monotonic() + 60
            while time.monotonic() < stop_at and not self._stop.wait(self.trickle_gap):
                sock.sendall(piece)
        elif fault == "not_json":
            self._send(sock, 200, "OK", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        elif fault == "read_timeout":
            self._silent()
            self._send(sock, 200, "OK", openai_body(model))
        elif fault in ("ok_stream", "stream_cut", "stream_stall"):
            head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            sock.sendall(head.encode() + _chunked(b": OPENROUTER PROCESSING\n\n"))
            first = sse_chunk(model, {"role": "assistant", "content": STREAM_PIECES[0]})
            sock.sendall(_chunked(first) + _chunked(sse_chunk(model, {"content": STREAM_PIECES[1]})))
            if fault == "stream_cut":
                time.sleep(0.05)
                # Half a chunk, then the connection drops: no terminating chunk, no [DONE].
                sock.sendall(f"{100:x}\r\n".encode() + b"data: {")
                sock.shutdown(socket.SHUT_RDWR)
                return
            if fault == "stream_stall":
                self._silent()
                return
            rest = sse_chunk(model, {"content": STREAM_PIECES[2]}) + sse_chunk(model, {}, "stop")
            rest += sse_usage(model, 30) + b"data: [DONE]\n\n"
            sock.sendall(_chunked(rest) + b"0\r\n\r\n")
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def _endless(self, sock: socket.socket, model: str, piece: str) -> None:
        """Content chunks until the gateway closes the connection (bounded: 60 s or 1 GB)."""
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode())
        chunk = _chunked(sse_chunk(model, {"content": piece}))
        sent, deadline = 0, time.monotonic() + 60
        try:
            while sent < 2**30 and time.monotonic() < deadline and not self._stop.is_set():
                sock.sendall(chunk)
                sent += len(piece)
        finally:
            with self._lock:
                self.endless_sent.append(sent)


def refused_url(suffix: str) -> str:
    """A local address where nothing listens: the connect is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{suffix}"


class Blackhole:
    """A listening socket that never accepts, its backlog filled: new connects hang until they time out."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.1)

    def url(self, suffix: str) -> str:
        return f"http://127.0.0.1:{self.port}{suffix}"

    def close(self) -> None:
        for sock in [*self.fillers, self.sock]:
            sock.close()
