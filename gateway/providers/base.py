"""The shapes every provider adapter speaks, whatever its wire format.

A request reaches an adapter as a `ChatRequest` (OpenAI-style messages, the
provider's native model name) with the `ProviderConfig` it is sent to; the
adapter turns it into an `UpstreamRequest` and turns what comes back into a
`ChatResult`, `StreamDelta`s or a typed `UpstreamError`. Adapters do no I/O,
read no settings and touch no database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

# Wire formats; each has one adapter module.
WIRE_OPENAI_COMPAT = "openai_compat"
WIRE_ANTHROPIC = "anthropic"
WIRE_GEMINI = "gemini"
WIRE_DEMO = "demo"

# Usage shapes: how an upstream counts its tokens, so `gateway.pricing` prices each part right.
SHAPE_OPENAI = "openai"  # cached tokens inside prompt_tokens, reasoning inside completion_tokens
SHAPE_OPENROUTER = "openrouter"  # OpenAI's counts plus its own `usage.cost`, which stays authoritative
SHAPE_ANTHROPIC = "anthropic"  # cache reads and writes outside input_tokens, thinking inside output
SHAPE_GEMINI = "gemini"  # cached inside promptTokenCount, thoughts outside candidatesTokenCount


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where and how to reach one provider (built from settings by the registry)."""

    name: str  # openrouter | openai | anthropic | google | groq | zai | ollama | demo
    wire: str  # one of the WIRE_* constants
    base_url: str
    api_key: str = field(default="", repr=False)
    headers: dict[str, str] = field(default_factory=dict)  # extra static headers
    supports_zdr: bool = False  # can promise zero data retention / no training on data
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    deadline: float | None = None  # total seconds of one attempt (a stream: to its first event)
    stream_deadline: float | None = None  # total seconds of a whole stream


@dataclass(slots=True)
class ChatRequest:
    model: str  # the provider's native model name
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    top_p: float | None = None
    stop: list[str] | None = None
    # Further OpenAI parameters passed through as-is where the wire supports them
    # (tools, tool_choice, response_format, seed, ...).
    params: dict[str, Any] = field(default_factory=dict)
    # Wire-specific additions, e.g. OpenRouter's `provider` object and `models` array.
    extra_body: dict[str, Any] = field(default_factory=dict)
    # What is asked: "chat" (messages -> an answer) or "embeddings" (`input` -> one vector each).
    kind: str = "chat"
    input: list[Any] | None = None  # embeddings: strings or token arrays
    # The caller's own Anthropic Messages body (a call on `POST /v1/messages`): the Anthropic wires send
    # it as given (model and max_tokens set by the gateway) instead of translating `messages`.
    anthropic: dict[str, Any] | None = None
    anthropic_beta: list[str] = field(default_factory=list)  # the caller's `anthropic-beta` names


@dataclass(slots=True)
class Usage:
    """One answer's usage, normalized whatever the wire said: `prompt_tokens` counts every input token
    (cache reads and writes included) and `completion_tokens` every output token (reasoning
    included), as OpenAI counts them. The detail counts say how many of those were which part;
    `shape` names the upstream's own way of counting (the SHAPE_* constants), for the pricing."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal | None = None  # the upstream's own figure (OpenRouter `usage.cost`)
    cached_tokens: int = 0  # of prompt_tokens: read from the prompt cache
    cache_write_5m_tokens: int = 0  # of prompt_tokens: written to the cache (5-minute or unstated TTL)
    cache_write_1h_tokens: int = 0  # of prompt_tokens: written to the 1-hour cache
    reasoning_tokens: int = 0  # of completion_tokens: internal reasoning / thinking
    shape: str = SHAPE_OPENAI

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens


@dataclass(slots=True)
class ChatResult:
    content: str
    model: str  # the model that actually answered, as the upstream names it
    provider: str  # the provider that answered (OpenRouter reports its upstream's name)
    usage: Usage | None
    finish_reason: str | None = None
    upstream_id: str = ""
    message: dict[str, Any] | None = None  # the full assistant message (tool calls etc.)
    # Every choice OpenAI-shaped ({index, message, finish_reason, logprobs}) when the upstream gave
    # more than the first message says: several (`n`), or logprobs.
    choices: list[dict[str, Any]] | None = None
    embeddings: list[list[float]] | None = None  # an embeddings call's vectors, one per input
    # An Anthropic answer's own content blocks (thinking with its signature, tool_use, ...), for the
    # Messages face to return as they came.
    blocks: list[dict[str, Any]] | None = None
    # Anthropic's own `stop_reason` and `stop_sequence` (finish_reason maps them to OpenAI's names).
    stop: dict[str, Any] | None = None

    @property
    def all_text(self) -> str:
        """The text of every choice (what an estimate of the completion must count)."""
        if not self.choices or len(self.choices) < 2:
            return self.content
        return "".join(str((c.get("message") or {}).get("content") or "") for c in self.choices)


@dataclass(slots=True)
class StreamDelta:
    """One piece of a streamed answer; a `usage` is the running total (a later one replaces it)."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    provider: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    index: int = 0  # which choice (`n` > 1) the piece belongs to
    logprobs: Any = None  # the choice's logprobs for this piece, as the upstream gave them
    upstream_id: str = ""  # the upstream's id of the answer (OpenRouter's generation id), when it says
    thinking: str = ""  # a piece of Anthropic extended thinking (output, but not the answer's text)
    signature: str = ""  # the signature that closes a thinking block (Anthropic wants it back)
    stop: dict[str, Any] | None = None  # Anthropic's own stop_reason / stop_sequence, with finish_reason


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None


class StreamParser(Protocol):
    """Turns one stream's server-sent events into deltas; holds per-stream state."""

    def feed(self, event: str | None, data: str) -> list[StreamDelta]: ...

    def finish(self) -> list[StreamDelta]:
        """Called when the upstream closed the stream; raises `UpstreamUnavailable` if it ended early."""
        ...


class Adapter(Protocol):
    wire: str

    def build_request(self, request: ChatRequest, config: ProviderConfig) -> UpstreamRequest: ...

    def parse_response(self, body: bytes, config: ProviderConfig) -> ChatResult: ...

    def stream_parser(self, config: ProviderConfig) -> StreamParser: ...

    def map_error(
        self, status: int, body: bytes, headers: dict[str, str], config: ProviderConfig | None = None
    ) -> Exception:
        """The typed error for an HTTP error answer; `config` only lends its name to the message."""
        ...


@runtime_checkable
class LocalAdapter(Protocol):
    """An adapter that answers in-process (the `demo` provider): no request is built or sent."""

    wire: str

    def complete(self, request: ChatRequest, config: ProviderConfig) -> ChatResult: ...

    def stream(self, request: ChatRequest, config: ProviderConfig) -> Iterator[StreamDelta]: ...
