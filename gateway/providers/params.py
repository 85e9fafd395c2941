"""Parameter fidelity: what each wire format does with the OpenAI chat parameters a caller set.

An OpenAI-compatible target gets every parameter as given. For the other wire formats each parameter
is one of:
- `translated`: the adapter maps it onto the wire's own field (`n` -> Gemini's `candidateCount`);
- `skip`: it changes the answer and the wire cannot honour it, so routing skips the attempt (with the
  reason, as privacy skips do) rather than answer without it;
- `drop`: it is advisory (metadata, sampling hints, unknown fields): left out, and the answer names it
  in the `X-SmartSpec-Dropped-Params` header.

`docs/INTEGRATION_GUIDE.md` shows this table; a test checks each row against the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.providers.base import WIRE_ANTHROPIC, WIRE_DEMO, WIRE_GEMINI, WIRE_OPENAI_COMPAT

FORWARDED, TRANSLATED, SKIP, DROP = "forwarded", "translated", "skip", "drop"

# Thinking budgets (tokens) for OpenAI's reasoning_effort levels.
ANTHROPIC_THINKING = {
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32000,
    "max": 32000,
}
GEMINI_THINKING = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
GEMINI_THINKING["max"] = GEMINI_THINKING["xhigh"]
ANTHROPIC_MIN_THINKING = 1024

WIRE_PARAMS: dict[str, dict[str, str]] = {
    WIRE_ANTHROPIC: {
        "tools": TRANSLATED,
        "tool_choice": TRANSLATED,
        "parallel_tool_calls": TRANSLATED,
        "top_k": TRANSLATED,
        "reasoning_effort": TRANSLATED,
        "reasoning": TRANSLATED,
        "user": TRANSLATED,
        "stop": TRANSLATED,
        "n": SKIP,
        "logprobs": SKIP,
        "top_logprobs": SKIP,
        "response_format": SKIP,
        "logit_bias": SKIP,
        "modalities": SKIP,
        "audio": SKIP,
        "web_search_options": SKIP,
        "metadata": DROP,
        "store": DROP,
        "service_tier": DROP,
        "seed": DROP,
        "presence_penalty": DROP,
        "frequency_penalty": DROP,
        "repetition_penalty": DROP,
        "prediction": DROP,
    },
    WIRE_GEMINI: {
        "tools": TRANSLATED,
        "tool_choice": TRANSLATED,
        "top_k": TRANSLATED,
        "reasoning_effort": TRANSLATED,
        "reasoning": TRANSLATED,
        "n": TRANSLATED,
        "stop": TRANSLATED,
        "response_format": TRANSLATED,
        "seed": TRANSLATED,
        "presence_penalty": TRANSLATED,
        "frequency_penalty": TRANSLATED,
        "logprobs": SKIP,
        "top_logprobs": SKIP,
        "logit_bias": SKIP,
        "modalities": SKIP,
        "audio": SKIP,
        "web_search_options": SKIP,
        "parallel_tool_calls": DROP,
        "metadata": DROP,
        "user": DROP,
        "store": DROP,
        "service_tier": DROP,
        "repetition_penalty": DROP,
        "prediction": DROP,
    },
}


def _active(name: str, value: Any) -> bool:
    """Whether a parameter asks for something (`n: 1`, `logprobs: false`, text output ask for nothing)."""
    if value is None:
        return False
    if name == "n":
        return isinstance(value, int) and value > 1
    if name in ("logprobs", "top_logprobs", "tools", "parallel_tool_calls"):
        return bool(value) if name != "parallel_tool_calls" else value is False
    if name == "response_format":
        return not (isinstance(value, dict) and value.get("type") in (None, "text"))
    if name == "modalities":
        return isinstance(value, list) and any(m != "text" for m in value)
    if name == "reasoning_effort":
        return value != "none"
    return True


def treatment(wire: str, name: str) -> str:
    """What `wire` does with parameter `name` (unknown fields are advisory: dropped)."""
    if wire in (WIRE_OPENAI_COMPAT, WIRE_DEMO):
        return FORWARDED
    return WIRE_PARAMS.get(wire, {}).get(name, DROP)


@dataclass(slots=True)
class Fit:
    unsupported: list[str] = field(default_factory=list)  # answer-changing, cannot be honoured
    dropped: list[str] = field(default_factory=list)  # advisory, left out


def params_fit(
    wire: str, params: dict[str, Any], *, max_tokens: int | None = None, temperature: float | None = None
) -> Fit:
    """How well an attempt on `wire` can honour `params` (the caller's further OpenAI parameters)."""
    fit = Fit()
    for name, value in params.items():
        if not _active(name, value):
            continue
        how = treatment(wire, name)
        if how == SKIP:
            fit.unsupported.append(name)
        elif how == DROP:
            fit.dropped.append(name)
    if wire == WIRE_ANTHROPIC and "reasoning_effort" not in fit.unsupported:
        budget = anthropic_thinking_budget(params, max_tokens)
        if budget == -1:
            # Anthropic's smallest thinking budget must fit under max_tokens.
            fit.unsupported.append("reasoning_effort" if "reasoning_effort" in params else "reasoning")
        elif budget is not None:
            # Extended thinking refuses sampling changes: they are left out, and said so.
            if temperature is not None and temperature != 1:
                fit.dropped.append("temperature")
            if params.get("top_k") is not None:
                fit.dropped.append("top_k")
    return fit


def reasoning_level(params: dict[str, Any]) -> tuple[str | None, int | None]:
    """(effort level, explicit token budget) from `reasoning_effort` or OpenRouter's `reasoning` object."""
    effort = params.get("reasoning_effort")
    budget = None
    reasoning = params.get("reasoning")
    if isinstance(reasoning, dict):
        if effort is None and isinstance(reasoning.get("effort"), str):
            effort = reasoning["effort"]
        if isinstance(reasoning.get("max_tokens"), int) and not isinstance(reasoning["max_tokens"], bool):
            budget = reasoning["max_tokens"]
        if reasoning.get("enabled") is False:
            return "none", None
    return (effort if isinstance(effort, str) else None), budget


def anthropic_thinking_budget(params: dict[str, Any], max_tokens: int | None) -> int | None:
    """Anthropic's `thinking.budget_tokens` for the request; None: no thinking; -1: cannot fit."""
    effort, budget = reasoning_level(params)
    if budget is None:
        if effort in (None, "none"):
            return None
        budget = ANTHROPIC_THINKING.get(effort, ANTHROPIC_THINKING["medium"])
    limit = (max_tokens or 0) - 1
    budget = min(budget, limit)
    return budget if budget >= ANTHROPIC_MIN_THINKING else -1


def gemini_thinking_budget(params: dict[str, Any]) -> int | None:
    effort, budget = reasoning_level(params)
    if budget is not None:
        return budget
    if effort is None:
        return None
    return GEMINI_THINKING.get(effort, GEMINI_THINKING["medium"])
