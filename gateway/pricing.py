"""What a call may cost before it runs, and what it did cost after: token bounds, usage checks, USD.

Money stays Decimal USD here; `billing.credits.usd_to_micro` turns it into micro-credits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .catalog import CatalogModel
from .providers.base import SHAPE_ANTHROPIC, SHAPE_GEMINI, SHAPE_OPENAI, SHAPE_OPENROUTER, Usage

# A reported cost beyond this for one call is nonsense, not a bill.
MAX_SANE_COST_USD = Decimal(1000)
# Typical bytes per token, for estimates when an upstream reports no usable usage.
BYTES_PER_TOKEN = 4
# What a relayed stream may carry per token of `max_tokens` before the gateway cuts it: no tokenizer
# in use averages a quarter of this on real output, so only a runaway upstream reaches it.
RELAY_BYTES_PER_TOKEN = 16


def messages_bytes(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode())


def prompt_token_bound(messages: list[dict[str, Any]]) -> int:
    """A tokenizer-free upper bound of the prompt's tokens.

    Byte-level tokenizers never produce more tokens than bytes, and the JSON framing of each
    message (`{"role":"user","content":""}`) outweighs the few tokens chat templates add.
    """
    return messages_bytes(messages)


# What an upstream may count beyond the request's own bytes: an image part is priced by its pixels
# (OpenAI's high detail and Anthropic's largest images stay below this), and tool use adds a system
# prompt of its own on some providers.
IMAGE_TOKEN_BOUND = 6_000
TOOLS_TOKEN_ALLOWANCE = 1_000
# Request fields that reach the model as prompt text.
PROMPT_PARAMS = ("tools", "tool_choice", "response_format", "functions")


def _compact_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def request_prompt_bound(
    *, messages: list[dict[str, Any]], params: dict[str, Any], context_length: int = 0
) -> int:
    """The most prompt tokens an upstream can count for this request: its messages and the fields
    that become prompt text, with an allowance per image and for tool use, capped by the largest
    context window of the route (`context_length`, 0 when unknown: no cap)."""
    extra = {name: params[name] for name in PROMPT_PARAMS if params.get(name) is not None}
    bound = prompt_token_bound(messages) + IMAGE_TOKEN_BOUND * image_count(messages)
    if extra:
        bound += _compact_bytes(extra) + TOOLS_TOKEN_ALLOWANCE
    return min(bound, context_length) if context_length > 0 else bound


def native_prompt_bound(*, body: dict[str, Any], images: int) -> int:
    """`request_prompt_bound` of a native Anthropic Messages body (every field of it can be prompt)."""
    return _compact_bytes(body) + IMAGE_TOKEN_BOUND * images + TOOLS_TOKEN_ALLOWANCE


# count_tokens' estimate for routes without a tokenizer endpoint: a token per 4 bytes of text (JSON of
# the messages and tools, images left out) plus a typical image's tokens (Anthropic: about
# width x height / 750, 1,600 for a 1.15-megapixel image), rounded up.
IMAGE_TOKENS_ESTIMATE = 1_600


def prompt_tokens_estimate(*, messages: list[dict[str, Any]], params: dict[str, Any]) -> int:
    """An estimate (not a bound) of a prompt's tokens, for `count_tokens` when no upstream counts."""
    images = image_count(messages)
    texts = [
        {
            **message,
            "content": [
                part
                for part in message["content"]
                if not (isinstance(part, dict) and part.get("type") in ("image_url", "image"))
            ],
        }
        if isinstance(message.get("content"), list)
        else message
        for message in messages
    ]
    extra = {name: params[name] for name in PROMPT_PARAMS if params.get(name) is not None}
    size = messages_bytes(texts) + (_compact_bytes(extra) if extra else 0)
    return tokens_estimate(size) + IMAGE_TOKENS_ESTIMATE * images


def output_bytes(*, text: str = "", tool_calls: list[dict[str, Any]] | None = None) -> int:
    """The bytes of what a model produced: its text and its tool calls (an answer may be only calls)."""
    return len(text.encode()) + (_compact_bytes(tool_calls) if tool_calls else 0)


def tokens_estimate(byte_count: int) -> int:
    return math.ceil(byte_count / BYTES_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class ResolvedUsage:
    prompt_tokens: int
    completion_tokens: int
    upstream_cost: Decimal | None  # the upstream's own USD figure when it gave a sane one
    estimated: bool  # the upstream's usage was missing or nonsense; counted from the text
    capped: bool = False  # the upstream claimed more than the call could use; cut to its bounds
    # Parts of the totals (see `providers.base.Usage`): each is priced at its own component.
    cached_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    shape: str = SHAPE_OPENAI
    images: int = 0  # input images in the request (OpenRouter's per-image `image` price)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    def details(self) -> dict[str, int]:
        """The detail counts, for the faces to render in their own API's names."""
        return {
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def _sane_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sane_cost(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and Decimal(0) <= value <= MAX_SANE_COST_USD


def image_count(messages: list[dict[str, Any]]) -> int:
    """Input images of a request (OpenAI `image_url` parts), for the per-image price."""
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(
                1 for part in content if isinstance(part, dict) and part.get("type") in ("image_url", "image")
            )
    return count


def usage_resolve(
    *,
    usage: Usage | None,
    prompt_bytes: int,
    completion_bytes: int,
    images: int = 0,
    prompt_bound: int | None = None,
    completion_bound: int | None = None,
) -> ResolvedUsage:
    """The usage to bill: the upstream's when it is sane, else an estimate from the text (flagged).

    Never zero for an answer that has text: a reply that says it used no tokens is nonsense too.
    An estimate has no details: every token is priced as a plain one. Counts above what the call
    could use (`prompt_bound`, `completion_bound`: the prompt's upper bound and `max_tokens`) are
    cut to those bounds and flagged, so a bill grows with the claim only up to the call's worst
    case: there is no cliff where a larger claim bills less.
    """
    counts_ok = (
        usage is not None
        and _sane_count(usage.prompt_tokens)
        and _sane_count(usage.completion_tokens)
        and not (completion_bytes and usage.completion_tokens == 0)
        and usage.prompt_tokens + usage.completion_tokens > 0
    )
    if not counts_ok:
        return ResolvedUsage(
            prompt_tokens=_capped(max(1, tokens_estimate(prompt_bytes)), prompt_bound),
            completion_tokens=_capped(
                max(1 if completion_bytes else 0, tokens_estimate(completion_bytes)), completion_bound
            ),
            upstream_cost=None,
            estimated=True,
            shape=usage.shape if usage is not None else SHAPE_OPENAI,
            images=images,
        )
    prompt = _capped(usage.prompt_tokens, prompt_bound)
    completion = _capped(usage.completion_tokens, completion_bound)
    capped = (prompt, completion) != (usage.prompt_tokens, usage.completion_tokens)
    cost, estimated = usage.cost_usd, False
    if capped:
        # A cost for counts we do not believe is not believed either: the capped counts are priced.
        cost = None
    elif cost is not None and not _sane_cost(cost):
        # Counts are fine but the cost is not: price the counts ourselves and flag it.
        cost, estimated = None, True
    # Details are parts of the totals: cut with them.
    cached = min(usage.cached_tokens, prompt)
    write_5m = min(usage.cache_write_5m_tokens, prompt - cached)
    write_1h = min(usage.cache_write_1h_tokens, prompt - cached - write_5m)
    return ResolvedUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        upstream_cost=cost,
        estimated=estimated,
        capped=capped,
        cached_tokens=cached,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=min(usage.reasoning_tokens, completion),
        shape=usage.shape,
        images=images,
    )


def _capped(count: int, bound: int | None) -> int:
    return count if bound is None else min(count, bound)


# --- Pricing per usage shape -------------------------------------------------------------------
# Each function turns one answer's usage into priced lines (component, quantity, USD per unit), in
# OpenRouter's component names. The adapters already normalized the counts (`providers.base.Usage`:
# details are parts of the totals); what differs per shape is which parts exist and which price
# each part is billed at, as that upstream bills it.


@dataclass(frozen=True, slots=True)
class CostLine:
    component: str  # prompt | completion | input_cache_read | input_cache_write | ... | request | image
    quantity: int  # tokens, calls or images
    unit_price: Decimal  # USD per unit

    @property
    def usd(self) -> Decimal:
        return self.quantity * self.unit_price


def _lines(
    *,
    model: CatalogModel,
    fresh_prompt: int,
    cached: int,
    write_5m: int,
    write_1h: int,
    plain_completion: int,
    reasoning: int,
    reasoning_price: Decimal,
    images: int,
) -> list[CostLine]:
    lines = [
        CostLine("prompt", fresh_prompt, model.prompt_price),
        CostLine("input_cache_read", cached, model.cache_read_price),
        CostLine("input_cache_write", write_5m, model.cache_write_price),
        CostLine("input_cache_write_1h", write_1h, model.cache_write_1h_price),
        CostLine("completion", plain_completion, model.completion_price),
        CostLine("internal_reasoning", reasoning, reasoning_price),
        CostLine("request", 1, model.request_price),
        CostLine("image", images, model.image_price),
    ]
    # The tokens used, and the per-call and per-image lines only where they have a price.
    return [line for line in lines if line.quantity and (line.unit_price or line.component not in FLAT_LINES)]


FLAT_LINES = ("request", "image")


def cost_lines_openai(*, usage: ResolvedUsage, model: CatalogModel) -> list[CostLine]:
    """OpenAI (and every OpenAI-compatible upstream): `cached_tokens` are inside `prompt_tokens`,
    `reasoning_tokens` inside `completion_tokens`. OpenAI charges nothing extra for cache writes;
    an OpenAI-compatible upstream that reports them (`cache_write_tokens`) is billed the write price."""
    return _lines(
        model=model,
        fresh_prompt=usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        cached=usage.cached_tokens,
        write_5m=usage.cache_write_5m_tokens,
        write_1h=usage.cache_write_1h_tokens,
        plain_completion=usage.completion_tokens - usage.reasoning_tokens,
        reasoning=usage.reasoning_tokens,
        reasoning_price=model.reasoning_price,
        images=usage.images,
    )


def cost_lines_anthropic(*, usage: ResolvedUsage, model: CatalogModel) -> list[CostLine]:
    """Anthropic: `input_tokens` excludes `cache_read_input_tokens` and `cache_creation_input_tokens`
    (the adapter added both into the prompt total, so the fresh input is what is left); 5-minute
    and 1-hour writes have their own prices; thinking is billed as output (no separate count)."""
    return _lines(
        model=model,
        fresh_prompt=usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        cached=usage.cached_tokens,
        write_5m=usage.cache_write_5m_tokens,
        write_1h=usage.cache_write_1h_tokens,
        plain_completion=usage.completion_tokens - usage.reasoning_tokens,
        reasoning=usage.reasoning_tokens,
        reasoning_price=model.completion_price,
        images=usage.images,
    )


def cost_lines_gemini(*, usage: ResolvedUsage, model: CatalogModel) -> list[CostLine]:
    """Gemini: `cachedContentTokenCount` is inside `promptTokenCount`; `thoughtsTokenCount` is
    outside `candidatesTokenCount` (the adapter added it to the completion total) and is priced as
    output: the reasoning price when the catalog has one, else the completion price."""
    return _lines(
        model=model,
        fresh_prompt=usage.prompt_tokens - usage.cached_tokens,
        cached=usage.cached_tokens,
        write_5m=0,
        write_1h=0,
        plain_completion=usage.completion_tokens - usage.reasoning_tokens,
        reasoning=usage.reasoning_tokens,
        reasoning_price=model.reasoning_price,
        images=usage.images,
    )


def cost_lines_openrouter(*, usage: ResolvedUsage, model: CatalogModel) -> list[CostLine]:
    """OpenRouter: OpenAI's counts (its `cache_write_tokens` inside `prompt_tokens` too). This is our
    own figure for the call; OpenRouter's `usage.cost` is what is billed when it gave one."""
    return cost_lines_openai(usage=usage, model=model)


PRICERS = {
    SHAPE_OPENAI: cost_lines_openai,
    SHAPE_OPENROUTER: cost_lines_openrouter,
    SHAPE_ANTHROPIC: cost_lines_anthropic,
    SHAPE_GEMINI: cost_lines_gemini,
}


def cost_lines(*, usage: ResolvedUsage, model: CatalogModel) -> list[CostLine]:
    return PRICERS.get(usage.shape, cost_lines_openai)(usage=usage, model=model)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one answer cost: the USD billed, our catalog figure, and the lines it is made of."""

    usd: Decimal  # billed: the upstream's own figure when it gave one, else `computed`
    computed: Decimal  # sum of `lines`: tokens x the catalog's price per component
    lines: tuple[CostLine, ...]
    source: str  # "upstream" (OpenRouter's usage.cost) | "catalog"


def cost_compute(*, usage: ResolvedUsage, model: CatalogModel) -> Cost:
    lines = tuple(cost_lines(usage=usage, model=model))
    computed = sum((line.usd for line in lines), Decimal(0))
    if usage.upstream_cost is not None:
        return Cost(usd=usage.upstream_cost, computed=computed, lines=lines, source="upstream")
    return Cost(usd=computed, computed=computed, lines=lines, source="catalog")


def cost_usd_compute(*, usage: ResolvedUsage, model: CatalogModel) -> Decimal:
    """USD at cost: the upstream's figure when given, else each usage component x its price."""
    return cost_compute(usage=usage, model=model).usd


@dataclass(frozen=True, slots=True)
class WorstPrices:
    """The dearest price per token (and per call, per image) that can apply to a route's answer."""

    prompt: Decimal  # the highest of prompt, cache read and both cache writes
    completion: Decimal  # the higher of completion and reasoning
    request: Decimal = Decimal(0)
    image: Decimal = Decimal(0)

    @classmethod
    def of(cls, models: list[CatalogModel]) -> WorstPrices:
        zero = Decimal(0)
        return cls(
            prompt=max(
                (
                    max(m.prompt_price, m.cache_read_price, m.cache_write_price, m.cache_write_1h_price)
                    for m in models
                ),
                default=zero,
            ),
            completion=max((max(m.completion_price, m.reasoning_price) for m in models), default=zero),
            request=max((m.request_price for m in models), default=zero),
            image=max((m.image_price for m in models), default=zero),
        )


def worst_case_usd(*, prices: WorstPrices, prompt_tokens: int, max_tokens: int, images: int = 0) -> Decimal:
    """The most a call can cost: every prompt token at the dearest input component (a cache write
    costs more than a plain token), every output token at the dearest output one."""
    return (
        prompt_tokens * prices.prompt
        + max_tokens * prices.completion
        + prices.request
        + images * prices.image
    )
