"""The unified client: one async `chat()` over every model and provider, without billing.

    from gateway.client import get_unified_client
    response = await get_unified_client().chat([{"role": "user", "content": "Hi"}], task_type="simple")

`LLMGateway` (gateway.service) wraps the same steps with the credit hold, the charge and the usage
record; the HTTP APIs use the gateway, Python code inside the project may use either.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from smartspec.errors import InvalidRequest, ServiceUnavailable, UpstreamError

from .aftercall import health_samples, health_samples_record
from .catalog import CatalogModel, catalog_callable, catalog_models_get
from .pricing import (
    CostLine,
    ResolvedUsage,
    cost_compute,
    image_count,
    messages_bytes,
    native_prompt_bound,
    output_bytes,
    prompt_tokens_estimate,
    request_prompt_bound,
    usage_resolve,
)
from .providers import provider_configs, provider_count_tokens, request_parts_check
from .providers.base import ChatRequest, ChatResult
from .routing import (
    DEMO,
    OPENROUTER,
    Attempt,
    RouteOptions,
    RoutePlan,
    attempt_request,
    attempts_run,
    model_direct_providers,
    route_options_validate,
    route_plan,
)

logger = logging.getLogger(__name__)

ROLES = ("system", "developer", "user", "assistant", "tool")
# The native API's further OpenAI parameters (the OpenAI-compatible faces pass every field on).
PASSTHROUGH_PARAMS = (
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "reasoning",
)
# Most inputs one embeddings call may carry (OpenAI's limit).
MAX_EMBEDDING_INPUTS = 2048
# Most choices (`n`) one call may ask for: each is priced at max_tokens in the hold.
MAX_CHOICES = 16
# Clients may never choose where we send their request (nor our keys).
FORBIDDEN_FIELDS = ("api_base", "base_url", "api_key")


@dataclass(slots=True)
class LLMRequest:
    """The native request (`POST /api/llm/chat` body, `LLMGateway.invoke` argument)."""

    messages: list[dict[str, Any]]
    model: str | None = None
    task_type: str | None = None
    budget_priority: str | None = None
    fallback_models: list[str] | None = None
    sort: str | None = None
    data_collection: str = "allow"
    zdr: bool | None = None
    max_price: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    use_openrouter: bool = True
    stream: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # further OpenAI parameters (tools, stop, ...)
    require_parameters: bool | None = None  # OpenRouter's provider.require_parameters
    kind: str = "chat"  # or "embeddings": `input` instead of messages, priced per input token
    input: Any = None  # embeddings: a string, strings or token arrays
    # The native API fills in DEFAULT_TEMPERATURE; the OpenAI-compatible faces send only what was set.
    sampling_defaults: bool = True
    # The Messages face: the caller's Anthropic body, sent as given where the route speaks it natively.
    anthropic: dict[str, Any] | None = None
    anthropic_beta: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LLMResponse:
    content: str
    model: str  # the model that answered
    provider: str  # the provider that answered
    task_type: str
    usage: dict[str, int]  # prompt_tokens, completion_tokens, total_tokens
    cost_usd: Decimal
    credits_charged: int  # micro-credits; 0 from the unbilled client
    latency_ms: int
    fallback_used: bool
    attempts: list[dict[str, Any]]
    request_id: str
    finish_reason: str | None = None
    usage_estimated: bool = False
    route: str = ""
    message: dict[str, Any] | None = None  # the full assistant message (tool calls)
    choices: list[dict[str, Any]] | None = None  # every choice, when there are several or logprobs
    dropped_params: list[str] = field(default_factory=list)  # advisory parameters the answerer lacked
    usage_details: dict[str, int] = field(default_factory=dict)  # cached / cache-write / reasoning counts
    embeddings: list[list[float]] | None = None  # an embeddings call's vectors
    # An Anthropic answer's own content blocks (native Messages calls), for the Messages face.
    blocks: list[dict[str, Any]] | None = None
    stop: dict[str, Any] | None = None  # Anthropic's own stop_reason / stop_sequence
    # Why this model answered, e.g. "simple/balanced: google/gemini-flash-1.5 retired, successor ...".
    routing_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def messages_validate(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list.", code="invalid_messages")
    if len(messages) > settings.MAX_MESSAGES:
        raise InvalidRequest(f"At most {settings.MAX_MESSAGES} messages.", code="too_many_messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object.", code="invalid_messages")
        if message.get("role") not in ROLES:
            raise InvalidRequest(
                f"messages[{index}].role must be one of {', '.join(ROLES)}.", code="invalid_messages"
            )
        content = message.get("content")
        if content is None and not message.get("tool_calls"):
            raise InvalidRequest(f"messages[{index}].content is required.", code="invalid_messages")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"messages[{index}].content must be a string or a list of parts.", code="invalid_messages"
            )
    return messages


@dataclass(slots=True)
class PreparedChat:
    """A validated call with its route, ready to run (the pieces the gateway bills around)."""

    request_id: str
    options: RouteOptions
    plan: RoutePlan
    chat: ChatRequest  # provider-neutral; each attempt sets its native model name
    max_tokens: int  # what the upstream is told, and what the worst case is priced at
    prompt_bytes: int
    prompt_bound: int = 0  # the most prompt tokens an upstream can count (`request_prompt_bound`)
    response_id: str = ""  # the face's own id of the answer when it is not `chatcmpl-<request_id>`

    @property
    def completion_bound(self) -> int:
        """The most completion tokens the call may produce (and be billed): `max_tokens` per choice."""
        choices = self.chat.params.get("n")
        n = choices if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1 else 1
        return self.max_tokens * n

    def model_for(self, model_id: str) -> CatalogModel | None:
        return self.plan.models.get(model_id)


def embedding_input_validate(value: Any) -> list[Any]:
    """`input` of an embeddings call: a string, a list of strings, a token array or a list of them."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(_is_token(t) for t in value)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "input must be a string, a list of strings or token arrays.", code="invalid_input"
        )
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"At most {MAX_EMBEDDING_INPUTS} inputs per call.", code="invalid_input")
    for index, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise InvalidRequest(f"input[{index}] must not be empty.", code="invalid_input")
        elif not (isinstance(item, list) and item and all(_is_token(t) for t in item)):
            raise InvalidRequest(
                f"input[{index}] must be a non-empty string or a non-empty array of token ids.",
                code="invalid_input",
            )
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def embedding_input_bound(inputs: list[Any]) -> int:
    """A tokenizer-free upper bound of the input tokens: a string's bytes, a token array's length."""
    return sum(len(item.encode()) if isinstance(item, str) else len(item) for item in inputs)


def _embeddings_validate(request: LLMRequest) -> tuple[RouteOptions, ChatRequest, int]:
    inputs = embedding_input_validate(request.input)
    options = route_options_validate(
        model=request.model,
        fallback_models=request.fallback_models,
        use_openrouter=request.use_openrouter,
        sort=request.sort,
        data_collection=request.data_collection,
        zdr=request.zdr,
        max_price=request.max_price,
        require_parameters=request.require_parameters,
    )
    if options.model is None:
        raise InvalidRequest("model is required for embeddings.", code="invalid_model")
    params = {k: v for k, v in request.params.items() if v is not None}
    dimensions = params.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= 65536
    ):
        raise InvalidRequest("dimensions must be a positive integer.", code="invalid_dimensions")
    chat = ChatRequest(model="", messages=[], max_tokens=0, params=params, kind="embeddings", input=inputs)
    return options, chat, 0


def request_validate(request: LLMRequest) -> tuple[RouteOptions, ChatRequest, int]:
    if request.kind == "embeddings":
        return _embeddings_validate(request)
    messages = messages_validate(request.messages)
    for name in FORBIDDEN_FIELDS:
        if name in request.params:
            raise InvalidRequest(f"{name} cannot be set by clients.", code="forbidden_field")
    options = route_options_validate(
        model=request.model,
        task_type=request.task_type,
        budget_priority=request.budget_priority,
        fallback_models=request.fallback_models,
        use_openrouter=request.use_openrouter,
        sort=request.sort,
        data_collection=request.data_collection,
        zdr=request.zdr,
        max_price=request.max_price,
        require_parameters=request.require_parameters,
    )
    temperature = request.temperature
    if temperature is None and request.sampling_defaults:
        temperature = settings.DEFAULT_TEMPERATURE
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise InvalidRequest("temperature must be a number between 0 and 2.")
    max_tokens = request.max_tokens
    if max_tokens is None:
        # Always bounded: the hold is priced at this, so the answer must not outgrow it.
        max_tokens = settings.DEFAULT_MAX_TOKENS
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= settings.MAX_OUTPUT_TOKENS
    ):
        raise InvalidRequest(
            f"max_tokens must be an integer between 1 and {settings.MAX_OUTPUT_TOKENS}.",
            code="invalid_max_tokens",
        )
    # Passed on as given (gateway.providers.params decides per wire what is forwarded or translated).
    params = {k: v for k, v in request.params.items() if v is not None}
    choices = params.get("n", 1)
    if isinstance(choices, bool) or not isinstance(choices, int) or not 1 <= choices <= MAX_CHOICES:
        raise InvalidRequest(f"n must be an integer between 1 and {MAX_CHOICES}.", code="invalid_n")
    stop = params.pop("stop", None)
    top_p = params.pop("top_p", None)
    if isinstance(stop, str):
        stop = [stop]
    chat = ChatRequest(
        model="",
        messages=messages,
        temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens,
        stream=request.stream,
        top_p=top_p,
        stop=stop,
        params=params,
        anthropic=request.anthropic,
        anthropic_beta=list(request.anthropic_beta),
    )
    return options, chat, max_tokens


def chat_prepare_sync(request: LLMRequest, *, request_id: str | None = None) -> PreparedChat:
    """Validate and route (sync: reads the catalog); raises 400/404 before anything is spent."""
    options, chat, max_tokens = request_validate(request)
    plan = route_plan(options=options, chat=chat)
    request_parts_check(chat, [attempt.config for attempt in plan.runnable])
    # A window of 0 is unknown: then no model of the route caps the bound.
    windows = [plan.models[a.model].context_length for a in plan.runnable if a.model in plan.models]
    context = 0 if not windows or 0 in windows else max(windows)
    if chat.kind == "embeddings":
        bound = embedding_input_bound(chat.input)
        # Estimates count 4 bytes a token; a token array is its own count.
        prompt_bytes = sum(len(i.encode()) if isinstance(i, str) else 4 * len(i) for i in chat.input)
    else:
        bound = request_prompt_bound(messages=chat.messages, params=chat.params, context_length=context)
        if chat.anthropic is not None:
            # A Messages body goes to Anthropic as given (server tools, documents by URL, ...): its
            # own bytes bound what that upstream can count too.
            native = native_prompt_bound(body=chat.anthropic, images=image_count(chat.messages))
            bound = max(bound, min(native, context) if context > 0 else native)
        prompt_bytes = messages_bytes(chat.messages)
    return PreparedChat(
        request_id=request_id or uuid.uuid4().hex,
        options=options,
        plan=plan,
        chat=chat,
        max_tokens=max_tokens,
        prompt_bytes=prompt_bytes,
        prompt_bound=bound,
    )


def answering_model_id(attempt: Attempt, reported: str | None) -> str:
    """OpenRouter names the model that really answered (its `models` fallbacks); direct providers
    answer with their own names, so our catalog id says it better."""
    if attempt.provider == OPENROUTER and reported:
        return reported
    return attempt.model


def answering_model_sync(prepared: PreparedChat, model_id: str, attempt: Attempt) -> CatalogModel:
    """The catalog entry to price an answer at (the planned one when the reported id is unknown)."""
    known = prepared.model_for(model_id)
    if known is None:
        known = catalog_models_get(model_ids=[model_id]).get(model_id)
    return known or prepared.plan.models[attempt.model]


def health_record_sync(*, attempts: list[Attempt], output_tokens: int = 0) -> None:
    """Feed every real attempt's outcome to provider health; never fails the call."""
    health_samples_record(health_samples(attempts=attempts, output_tokens=output_tokens))


@dataclass(slots=True)
class Outcome:
    """A finished answer, priced."""

    model: str
    provider: str
    usage: ResolvedUsage
    cost_usd: Decimal  # what is billed (OpenRouter's usage.cost when it gave one)
    computed_cost_usd: Decimal | None = None  # our own figure: each component x the catalog price
    cost_lines: tuple[CostLine, ...] = ()
    cost_source: str = "catalog"  # "upstream" | "catalog"
    upstream_id: str = ""  # the upstream's id of the answer (OpenRouter's generation id)
    # What the prompt cache saved against plain prompt tokens (OpenRouter's `cache_discount`; a cache
    # write dearer than a plain token makes it negative).
    cache_discount_usd: Decimal = Decimal(0)
    provider_name: str = ""  # who served it as the upstream says (OpenRouter: its provider, "OpenAI")

    def cost_lines_as_dicts(self) -> list[dict[str, Any]]:
        """The price applied per component, as the usage row and the receipt keep it."""
        return [
            {
                "component": line.component,
                "quantity": line.quantity,
                "unit_price": f"{line.unit_price.normalize():f}",
                "usd": f"{line.usd.normalize():f}",
            }
            for line in self.cost_lines
        ]


CACHE_COMPONENTS = ("input_cache_read", "input_cache_write", "input_cache_write_1h")


def result_output_bytes(result: ChatResult) -> int:
    tool_calls = result.message.get("tool_calls") if isinstance(result.message, dict) else None
    calls = tool_calls if isinstance(tool_calls, list) else None
    # Every choice (`n`) counts, and an Anthropic answer's thinking.
    thinking = "".join(
        str(block.get("thinking") or "") for block in result.blocks or () if block.get("type") == "thinking"
    )
    return output_bytes(text=(result.all_text or "") + thinking, tool_calls=calls)


def outcome_price_sync(
    *,
    prepared: PreparedChat,
    attempt: Attempt,
    reported_model: str | None,
    usage,
    completion_bytes: int,
    upstream_id: str = "",
    provider_name: str = "",
) -> Outcome:
    """Price an answer; `completion_bytes` is what was produced (text and tool calls), for estimates."""
    model_id = answering_model_id(attempt, reported_model)
    resolved = usage_resolve(
        usage=usage,
        prompt_bytes=prepared.prompt_bytes,
        completion_bytes=completion_bytes,
        images=image_count(prepared.chat.messages),
        prompt_bound=prepared.prompt_bound or None,
        completion_bound=prepared.completion_bound,
    )
    outcome = Outcome(
        model=model_id,
        provider=attempt.provider,
        usage=resolved,
        cost_usd=Decimal(0),
        upstream_id=upstream_id[:200],
        provider_name=(provider_name or attempt.provider)[:100],
    )
    if resolved.upstream_cost is not None or resolved.total_tokens:
        priced_at = answering_model_sync(prepared, model_id, attempt)
        cost = cost_compute(usage=resolved, model=priced_at)
        outcome.cost_usd, outcome.computed_cost_usd = cost.usd, cost.computed
        outcome.cost_lines, outcome.cost_source = cost.lines, cost.source
        outcome.cache_discount_usd = sum(
            (
                line.quantity * (priced_at.prompt_price - line.unit_price)
                for line in cost.lines
                if line.component in CACHE_COMPONENTS
            ),
            Decimal(0),
        )
    if resolved.estimated:
        logger.warning(
            "usage from %s for %s was missing or nonsense: billed an estimate", attempt.provider, model_id
        )
    if resolved.capped:
        logger.warning(
            "usage from %s for %s exceeded the call's bounds: billed at most its worst case",
            attempt.provider,
            model_id,
        )
    return outcome


def response_build(
    *,
    prepared: PreparedChat,
    result: ChatResult | None,
    outcome: Outcome,
    latency_ms: int,
    credits: int,
    text: str,
) -> LLMResponse:
    plan = prepared.plan
    # Any step past the route's first, skipped ones included: the caller did not get its first choice.
    first_choice = plan.attempts[0]
    winner = next((a for a in plan.attempts if a.status == "ok"), None)
    return LLMResponse(
        content=text,
        model=outcome.model,
        provider=outcome.provider,
        task_type=plan.task_type,
        usage={
            "prompt_tokens": outcome.usage.prompt_tokens,
            "completion_tokens": outcome.usage.completion_tokens,
            "total_tokens": outcome.usage.total_tokens,
        },
        cost_usd=outcome.cost_usd,
        credits_charged=credits,
        latency_ms=latency_ms,
        fallback_used=winner is not None and winner is not first_choice,
        attempts=plan.attempts_as_dicts(),
        request_id=prepared.request_id,
        finish_reason=result.finish_reason if result else None,
        usage_estimated=outcome.usage.estimated,
        route=plan.route,
        message=result.message if result else None,
        choices=result.choices if result else None,
        dropped_params=list(winner.dropped) if winner is not None else [],
        usage_details=outcome.usage.details(),
        embeddings=result.embeddings if result else None,
        blocks=result.blocks if result else None,
        stop=result.stop if result else None,
        routing_reason=plan.reason,
    )


class UnifiedLLMClient:
    """Routing, fallbacks and provider calls in one async call; no credits involved."""

    async def chat(
        self,
        messages: list[dict[str, Any]],
        model: str | None = None,
        task_type: str | None = None,
        budget_priority: str = "balanced",
        use_openrouter: bool = True,
        fallback_models: list[str] | None = None,
        sort: str | None = None,
        data_collection: str = "allow",
        zdr: bool | None = None,
        max_price: dict[str, Any] | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        request_id = kwargs.pop("request_id", None)
        request = LLMRequest(
            messages=messages,
            model=model,
            task_type=task_type,
            budget_priority=budget_priority,
            fallback_models=fallback_models,
            sort=sort,
            data_collection=data_collection,
            zdr=zdr,
            max_price=max_price,
            temperature=temperature,
            max_tokens=max_tokens,
            use_openrouter=use_openrouter,
            params=kwargs,
        )
        prepared = await sync_to_async(chat_prepare_sync)(request, request_id=request_id)
        started = time.monotonic()
        try:
            result, attempt = await attempts_run(plan=prepared.plan, request=prepared.chat)
        finally:
            await sync_to_async(health_record_sync)(attempts=prepared.plan.attempts)
        outcome = await sync_to_async(outcome_price_sync)(
            prepared=prepared,
            attempt=attempt,
            reported_model=result.model,
            usage=result.usage,
            completion_bytes=result_output_bytes(result),
            upstream_id=result.upstream_id,
            provider_name=result.provider,
        )
        return response_build(
            prepared=prepared,
            result=result,
            outcome=outcome,
            latency_ms=int((time.monotonic() - started) * 1000),
            credits=0,
            text=result.content,
        )


ANTHROPIC = "anthropic"


async def prompt_tokens_count(request: LLMRequest) -> tuple[int, bool]:
    """(input tokens, estimated) of a Messages request, free of charge: Anthropic's own count when the
    route's model goes to Anthropic directly, else (or when that count fails) our estimate
    (`gateway.pricing.prompt_tokens_estimate`)."""
    from django.db import Error as DatabaseError

    from .db import run_db_step

    try:
        prepared = await run_db_step(chat_prepare_sync)(request)
    except DatabaseError:
        raise ServiceUnavailable("The model catalog is unavailable; try again shortly.") from None
    first = prepared.plan.model
    for attempt in prepared.plan.runnable:
        if attempt.model == first and attempt.provider == ANTHROPIC and prepared.chat.anthropic is not None:
            try:
                return await provider_count_tokens(
                    attempt.config, attempt_request(attempt, prepared.chat)
                ), False
            except UpstreamError as exc:
                logger.info("count_tokens via anthropic failed (%s): estimating", type(exc).__name__)
            break
    return prompt_tokens_estimate(messages=prepared.chat.messages, params=prepared.chat.params), True


_client: UnifiedLLMClient | None = None


def get_unified_client() -> UnifiedLLMClient:
    """The process's client (it holds no state; the pooled HTTP client lives in gateway.transport)."""
    global _client
    if _client is None:
        _client = UnifiedLLMClient()
    return _client


def get_available_models() -> list[dict[str, Any]]:
    """Callable catalog models (enabled, not retired) that some enabled provider can serve, with
    prices (USD per token) and lifecycle."""
    configs = provider_configs()
    models = []
    for model in catalog_callable():
        serving = [p for p in model_direct_providers(model) if p in configs]
        if OPENROUTER in model.providers and OPENROUTER in configs and settings.USE_OPENROUTER:
            serving.insert(0, OPENROUTER)
        if not serving and DEMO in configs:
            # As in routing: the demo answers any model no configured provider serves.
            serving = [DEMO]
        if not serving:
            continue
        models.append(
            {
                "id": model.id,
                "created": model.created,
                "mode": model.mode or "chat",
                "name": model.display_name,
                "context_length": model.context_length,
                "pricing": model.pricing(),
                "providers": serving,
                "zdr": model.zdr,
                "status": model.lifecycle,
                "shutdown_date": model.shutdown_date,
                "successor": model.successor,
            }
        )
    return models
