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
from .providers.base import Usage

# Counts beyond this are not a real answer (the largest context windows are ~2M tokens).
MAX_SANE_TOKENS = 10_000_000
# A reported cost beyond this for one call is nonsense, not a bill.
MAX_SANE_COST_USD = Decimal(1000)
# Typical bytes per token, for estimates when an upstream reports no usable usage.
BYTES_PER_TOKEN = 4


def messages_bytes(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode())


def prompt_token_bound(messages: list[dict[str, Any]]) -> int:
    """A tokenizer-free upper bound of the prompt's tokens.

    Byte-level tokenizers never produce more tokens than bytes, and the JSON framing of each
    message (`{"role":"user","content":""}`) outweighs the few tokens chat templates add.
    """
    return messages_bytes(messages)


def tokens_estimate(byte_count: int) -> int:
    return math.ceil(byte_count / BYTES_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class ResolvedUsage:
    prompt_tokens: int
    completion_tokens: int
    upstream_cost: Decimal | None  # the upstream's own USD figure when it gave a sane one
    estimated: bool  # the upstream's usage was missing or nonsense; counted from the text

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _sane_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SANE_TOKENS


def _sane_cost(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and Decimal(0) <= value <= MAX_SANE_COST_USD


def usage_resolve(*, usage: Usage | None, prompt_bytes: int, completion_text: str) -> ResolvedUsage:
    """The usage to bill: the upstream's when it is sane, else an estimate from the text (flagged).

    Never zero for an answer that has text: a reply that says it used no tokens is nonsense too.
    """
    completion_bytes = len(completion_text.encode())
    counts_ok = (
        usage is not None
        and _sane_count(usage.prompt_tokens)
        and _sane_count(usage.completion_tokens)
        and not (completion_bytes and usage.completion_tokens == 0)
        and usage.prompt_tokens + usage.completion_tokens > 0
    )
    if counts_ok:
        cost = usage.cost_usd
        if cost is None:
            return ResolvedUsage(usage.prompt_tokens, usage.completion_tokens, None, False)
        if _sane_cost(cost):
            return ResolvedUsage(usage.prompt_tokens, usage.completion_tokens, cost, False)
        # Counts are fine but the cost is not: price the counts ourselves and flag it.
        return ResolvedUsage(usage.prompt_tokens, usage.completion_tokens, None, True)
    return ResolvedUsage(
        prompt_tokens=max(1, tokens_estimate(prompt_bytes)),
        completion_tokens=max(1 if completion_bytes else 0, tokens_estimate(completion_bytes)),
        upstream_cost=None,
        estimated=True,
    )


def cost_usd_compute(*, usage: ResolvedUsage, model: CatalogModel) -> Decimal:
    """USD at cost: the upstream's figure when given, else tokens x the answering model's price."""
    if usage.upstream_cost is not None:
        return usage.upstream_cost
    return usage.prompt_tokens * model.prompt_price + usage.completion_tokens * model.completion_price


def worst_case_usd(
    *, prompt_tokens: int, max_tokens: int, prompt_price: Decimal, completion_price: Decimal
) -> Decimal:
    return prompt_tokens * prompt_price + max_tokens * completion_price
