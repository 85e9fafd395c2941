"""The provider layer: which providers are enabled, and one call or stream to one of them.

`provider_configs()` builds a `ProviderConfig` for every enabled provider from settings
(a provider is enabled when its key is set; Ollama when `OLLAMA_BASE_URL` is; `demo`
only when no real provider is, whatever DEBUG says: a configured gateway never answers a call
its providers cannot serve with a demo text). It is cached; changing a setting in a
test clears it, and `provider_configs.cache_clear()` does so by hand.

`provider_call()` / `provider_stream()` run one attempt through the adapter registered
for the config's wire format and the shared transport. Every failure is an
`UpstreamError` whose `retryable` tells the router whether to try the next attempt:
before a stream's first delta that is the whole story; after it, the stream still
raises `UpstreamError` but the router must not retry (part of the answer has gone out).
Close a stream you stop reading early (`contextlib.aclosing`) so its connection is
released at once.

`direct_provider_for()` names the provider that serves a vendor's models directly
(the catalog translates model names; `request.model` arrives already native).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator

from django.conf import settings
from django.test.signals import setting_changed

from gateway import transport
from gateway.providers import anthropic, demo, embeddings, gemini, openai_compat, parts
from gateway.providers._common import tag
from gateway.providers.base import (
    WIRE_ANTHROPIC,
    WIRE_DEMO,
    WIRE_GEMINI,
    WIRE_OPENAI_COMPAT,
    Adapter,
    ChatRequest,
    ChatResult,
    LocalAdapter,
    ProviderConfig,
    StreamDelta,
    UpstreamRequest,
)
from smartspec.errors import UpstreamError

ADAPTERS: dict[str, Adapter | LocalAdapter] = {
    WIRE_OPENAI_COMPAT: openai_compat.adapter,
    WIRE_ANTHROPIC: anthropic.adapter,
    WIRE_GEMINI: gemini.adapter,
    WIRE_DEMO: demo.adapter,
}

# Wire formats whose adapters read every message part themselves (gateway.providers.parts checks them
# first): Anthropic's and Gemini's rebuild them, and the demo provider (the quick start's upstream) reads
# them as OpenAI defines them, so it refuses what OpenAI would refuse instead of answering and billing it.
TRANSLATED_WIRES = frozenset({WIRE_ANTHROPIC, WIRE_GEMINI, WIRE_DEMO})

# vendor prefix of a `vendor/model` id -> the provider that serves that vendor directly.
DIRECT_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "z-ai": "zai",
    "meta-llama": "groq",
    "ollama": "ollama",
}

# Settings that change what provider_configs() returns.
_PROVIDER_SETTINGS = frozenset(
    {
        "DEBUG",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "OPENROUTER_SITE_URL",
        "OPENROUTER_SITE_NAME",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_API_KEY",
        "GEMINI_BASE_URL",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "ZAI_API_KEY",
        "ZAI_BASE_URL",
        "OLLAMA_BASE_URL",
        "UPSTREAM_CONNECT_TIMEOUT",
        "UPSTREAM_READ_TIMEOUT",
        "UPSTREAM_DEADLINE_SECONDS",
        "UPSTREAM_STREAM_MAX_SECONDS",
        "PROVIDER_TIMEOUTS",
    }
)


def _ollama_v1(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


@functools.cache
def provider_configs() -> dict[str, ProviderConfig]:
    """The enabled providers by name, in the order the router prefers them."""

    def timeouts(name: str) -> dict[str, float | None]:
        limits = settings.PROVIDER_TIMEOUTS.get(name, {})
        return {
            "connect_timeout": limits.get("connect", settings.UPSTREAM_CONNECT_TIMEOUT),
            "read_timeout": limits.get("read", settings.UPSTREAM_READ_TIMEOUT),
            "deadline": limits.get("deadline", settings.UPSTREAM_DEADLINE_SECONDS),
            "stream_deadline": settings.UPSTREAM_STREAM_MAX_SECONDS,
        }

    openrouter_headers = {}
    if settings.OPENROUTER_SITE_URL:
        openrouter_headers["HTTP-Referer"] = settings.OPENROUTER_SITE_URL
    if settings.OPENROUTER_SITE_NAME:
        openrouter_headers["X-Title"] = settings.OPENROUTER_SITE_NAME
    keyed = [
        # name, wire, base URL, key, extra headers, can promise zero data retention
        (
            "openrouter",
            WIRE_OPENAI_COMPAT,
            settings.OPENROUTER_BASE_URL,
            settings.OPENROUTER_API_KEY,
            openrouter_headers,
            True,  # OpenRouter filters its upstreams by `zdr`/`data_collection` itself
        ),
        ("zai", WIRE_OPENAI_COMPAT, settings.ZAI_BASE_URL, settings.ZAI_API_KEY, {}, False),
        ("openai", WIRE_OPENAI_COMPAT, settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, {}, False),
        ("anthropic", WIRE_ANTHROPIC, settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_API_KEY, {}, False),
        ("google", WIRE_GEMINI, settings.GEMINI_BASE_URL, settings.GOOGLE_API_KEY, {}, False),
        ("groq", WIRE_OPENAI_COMPAT, settings.GROQ_BASE_URL, settings.GROQ_API_KEY, {}, False),
    ]
    configs = {
        name: ProviderConfig(
            name=name,
            wire=wire,
            base_url=url,
            api_key=key,
            headers=headers,
            supports_zdr=zdr,
            **timeouts(name),
        )
        for name, wire, url, key, headers, zdr in keyed
        if key
    }
    if settings.OLLAMA_BASE_URL:
        # Self-hosted: nothing leaves our infrastructure.
        configs["ollama"] = ProviderConfig(
            name="ollama",
            wire=WIRE_OPENAI_COMPAT,
            base_url=_ollama_v1(settings.OLLAMA_BASE_URL),
            supports_zdr=True,
            **timeouts("ollama"),
        )
    if not configs:
        configs["demo"] = ProviderConfig(name="demo", wire=WIRE_DEMO, base_url="", supports_zdr=True)
    return configs


def circuit_providers() -> list[str]:
    """The configured providers that have a circuit breaker: all but the local demo."""
    return [name for name, config in provider_configs().items() if config.wire != WIRE_DEMO]


def _clear_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting in _PROVIDER_SETTINGS:
        provider_configs.cache_clear()


setting_changed.connect(_clear_on_setting_change, dispatch_uid="gateway.providers.provider_configs")


def direct_provider_for(model_id: str) -> str | None:
    """The provider serving `vendor/model` directly (whether or not it is configured), else None.

    Ollama only for explicit `ollama/<name>` ids: a local model is never a silent stand-in.
    """
    vendor, slash, name = model_id.partition("/")
    if not slash or not name:
        return None
    return DIRECT_PROVIDERS.get(vendor.strip().lower())


def request_parts_check(request: ChatRequest, configs: list[ProviderConfig | None]) -> None:
    """A 400 before the call opens when a message part cannot be translated for a wire format of
    the route (`configs`: the route's attempts)."""
    if request.kind != "embeddings" and any(c is not None and c.wire in TRANSLATED_WIRES for c in configs):
        parts.translated_request_check(request.messages, request.params)


# Providers that take a Messages API body natively (`ChatRequest.anthropic`), for the models they
# serve in Anthropic's format: Anthropic itself, and OpenRouter's Anthropic-compatible endpoint for
# Claude models (its other models are translated to chat completions like any other call).
NATIVE_MESSAGES: dict[str, tuple[Adapter, str]] = {
    "anthropic": (anthropic.adapter, ""),
    "openrouter": (anthropic.openrouter_messages_adapter, "anthropic/"),
}


def native_messages_adapter(config: ProviderConfig, model: str) -> Adapter | None:
    """The adapter that sends a Messages body to `config` for native model `model` as it is, or None."""
    native = NATIVE_MESSAGES.get(config.name)
    if native is None or not model.startswith(native[1]):
        return None
    return native[0]


def _adapter(config: ProviderConfig, request: ChatRequest | None = None) -> Adapter | LocalAdapter:
    if request is not None and request.anthropic is not None:
        native = native_messages_adapter(config, request.model)
        if native is not None:
            return native
    try:
        return ADAPTERS[config.wire]
    except KeyError:
        raise ValueError(f"no adapter for wire format {config.wire!r}") from None


async def _send(config: ProviderConfig, upstream: UpstreamRequest) -> transport.TransportResponse:
    """One whole request to `config`'s upstream, under its timeouts and its attempt deadline."""
    return await transport.send(
        upstream,
        provider=config.name,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        deadline=config.deadline,
    )


async def provider_count_tokens(config: ProviderConfig, request: ChatRequest) -> int:
    """Anthropic's own input token count of a Messages body (`POST /v1/messages/count_tokens`)."""
    upstream = anthropic.adapter.count_tokens_request(request, config)
    response = await _send(config, upstream)
    if response.status != 200:
        raise anthropic.adapter.map_error(response.status, response.body, response.headers, config)
    return anthropic.adapter.parse_count(response.body, config)


async def provider_call(config: ProviderConfig, request: ChatRequest) -> ChatResult:
    """One non-streamed attempt; raises `UpstreamError` on any failure."""
    if request.kind == "embeddings":
        return await _provider_embed(config, request)
    adapter = _adapter(config, request)
    request = dataclasses.replace(request, stream=False)
    if isinstance(adapter, LocalAdapter):
        return adapter.complete(request, config)
    upstream = adapter.build_request(request, config)
    response = await _send(config, upstream)
    if response.status >= 400:
        raise adapter.map_error(response.status, response.body, response.headers, config)
    if response.status != 200:
        raise tag(
            UpstreamError(f"{config.name} answered with an unexpected status (HTTP {response.status})."),
            config.name,
            response.status,
        )
    return adapter.parse_response(response.body, config)


async def _provider_embed(config: ProviderConfig, request: ChatRequest) -> ChatResult:
    """One embeddings attempt, its vectors on a `ChatResult` (usage: input tokens only)."""
    ask = embeddings.EmbeddingsRequest(
        model=request.model,
        input=list(request.input or []),
        dimensions=request.params.get("dimensions"),
        user=request.params.get("user"),
        provider=request.extra_body.get("provider"),
    )
    if config.wire == WIRE_DEMO:
        result = embeddings.demo_embed(ask, config)
    else:
        response = await _send(config, embeddings.build_request(ask, config))
        if response.status >= 400:
            raise _adapter(config).map_error(response.status, response.body, response.headers, config)
        if response.status != 200:
            raise tag(
                UpstreamError(f"{config.name} answered with an unexpected status (HTTP {response.status})."),
                config.name,
                response.status,
            )
        result = embeddings.parse_response(response.body, config, count=len(ask.input))
    return ChatResult(
        content="",
        model=result.model,
        provider=result.provider,
        usage=result.usage,
        embeddings=result.vectors,
    )


async def provider_stream(config: ProviderConfig, request: ChatRequest) -> AsyncIterator[StreamDelta]:
    """One streamed attempt, as deltas; raises `UpstreamError` on any failure, before or during."""
    adapter = _adapter(config, request)
    request = dataclasses.replace(request, stream=True)
    if isinstance(adapter, LocalAdapter):
        for delta in adapter.stream(request, config):
            yield delta
            await asyncio.sleep(0)  # let a disconnected client's cancellation land between pieces
        return
    upstream = adapter.build_request(request, config)
    parser = adapter.stream_parser(config)
    async with transport.open_stream(
        upstream,
        provider=config.name,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        deadline=config.deadline,
        stream_deadline=config.stream_deadline,
    ) as response:
        if response.status >= 400:
            raise adapter.map_error(response.status, await response.read(), response.headers, config)
        if "application/json" in response.headers.get("content-type", ""):
            # The upstream ignored `stream`: an error object raises, a whole answer comes out as one piece.
            result = adapter.parse_response(await response.read(), config)
            yield StreamDelta(content=result.content, model=result.model, provider=result.provider)
            yield StreamDelta(
                finish_reason=result.finish_reason or "stop",
                usage=result.usage,
                model=result.model,
                provider=result.provider,
            )
            return
        async for event in response.events():
            for delta in parser.feed(event.event, event.data):
                yield delta
        for delta in parser.finish():
            yield delta
