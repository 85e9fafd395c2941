"""Usage details in each API's own names, for the faces that render a `LLMResponse`.

The chat completions face (`gateway.openai_format`) and the Responses face
(`gateway.responses_format.usage`) render theirs next to their other shapes; the Anthropic Messages
shape lives here for the Messages face. Every one adds `cost` (USD) and `credits` (charged) as JSON
numbers with their exact digits.
"""

from __future__ import annotations

from typing import Any

from .client import LLMResponse
from .openai_format import money


def usage_anthropic(response: LLMResponse) -> dict[str, Any]:
    """Anthropic's `usage`: `input_tokens` are the fresh ones only, cache reads and writes are
    counted beside them (`cache_read_input_tokens`, `cache_creation_input_tokens`, split by TTL under
    `cache_creation`); thinking is inside `output_tokens`."""
    details = response.usage_details
    cached = details.get("cached_tokens", 0)
    write_5m = details.get("cache_write_5m_tokens", 0)
    write_1h = details.get("cache_write_1h_tokens", 0)
    return {
        "input_tokens": max(0, response.usage["prompt_tokens"] - cached - write_5m - write_1h),
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": response.usage["completion_tokens"],
        **money(response),
    }
