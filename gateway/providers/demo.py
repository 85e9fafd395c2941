"""The offline `demo` provider: answers in-process, needs no key, and is billed like a real one.

It lets a fresh clone (`make run`, no provider configured) serve real calls end to
end. The answer is deterministic: it says it is a demo answer and echoes the last user
message with a short note; token counts are estimated at four characters a token, and a
stream comes in word-sized pieces ending with the usage, like a real upstream's. It reports
no cost, so the gateway prices its tokens at the catalog price of the model asked for: a
newcomer sees the hold, the charge and the receipt exactly as a paid call would show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from gateway.providers._common import text_of
from gateway.providers.base import WIRE_DEMO, ChatRequest, ChatResult, ProviderConfig, StreamDelta, Usage

ECHO_LIMIT = 500
WORDS_PER_CHUNK = 3
NOTE = (
    "This answer comes from the offline demo provider, which repeats your last message "
    "so the gateway can be tried without any provider key; it is billed at the catalog "
    "price of the model you asked for. Set OPENROUTER_API_KEY (or another provider's key) "
    "for real answers."
)


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _answer(request: ChatRequest) -> tuple[str, str]:
    """The answer text (cut to `max_tokens`) and its finish reason."""
    last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
    echo = " ".join(text_of(last_user.get("content") if last_user else "").split())
    if len(echo) > ECHO_LIMIT:
        echo = echo[:ECHO_LIMIT] + "..."
    text = f"Demo answer: {echo or '(no question)'}\n\n{NOTE}"
    if request.max_tokens is not None and len(text) > request.max_tokens * 4:
        return text[: max(1, request.max_tokens) * 4], "length"
    return text, "stop"


def _usage(request: ChatRequest, answer: str) -> Usage:
    prompt = "".join(text_of(m.get("content")) for m in request.messages)
    # No cost of its own: the catalog prices the tokens, as for any provider that reports none.
    return Usage(prompt_tokens=_tokens(prompt), completion_tokens=_tokens(answer), cost_usd=None)


class DemoAdapter:
    wire = WIRE_DEMO

    def complete(self, request: ChatRequest, config: ProviderConfig) -> ChatResult:
        text, finish_reason = _answer(request)
        return ChatResult(
            content=text,
            model=request.model or "demo",
            provider=config.name,
            usage=_usage(request, text),
            finish_reason=finish_reason,
            message={"role": "assistant", "content": text},
        )

    def stream(self, request: ChatRequest, config: ProviderConfig) -> Iterator[StreamDelta]:
        text, finish_reason = _answer(request)
        model = request.model or "demo"
        # Keep the whitespace with the words so the pieces join back into the exact text.
        words = re.findall(r"\S+\s*|\s+", text)
        for start in range(0, len(words), WORDS_PER_CHUNK):
            piece = "".join(words[start : start + WORDS_PER_CHUNK])
            yield StreamDelta(content=piece, model=model, provider=config.name)
        yield StreamDelta(
            finish_reason=finish_reason, usage=_usage(request, text), model=model, provider=config.name
        )


adapter = DemoAdapter()
