"""A total deadline per upstream attempt: an upstream that trickles a byte at a time (each read well
inside the read timeout) is cut at `UPSTREAM_DEADLINE_SECONDS` / `<PROVIDER>_DEADLINE_SECONDS`, and a
stream at `UPSTREAM_STREAM_MAX_SECONDS`, through the real transport against a real local socket."""

from __future__ import annotations

import json
import time

import pytest

HELLO = [{"role": "user", "content": "Say hello"}]
pytestmark = pytest.mark.django_db(transaction=True)


def _state(user) -> tuple:
    from billing.models import CreditHold
    from billing.selectors import balance_get

    return balance_get(user=user), CreditHold.objects.filter(state="held").count()


@pytest.fixture
def trickling(faulty, settings):
    faulty.trickle_gap = 0.1  # every read comes 0.1 s after the last: the read timeout never fires
    settings.UPSTREAM_DEADLINE_SECONDS = 1.0
    settings.UPSTREAM_STREAM_MAX_SECONDS = 1.5
    settings.PROVIDER_TIMEOUTS = {name: {"connect": 5.0, "read": 5.0} for name in ("openrouter", "openai")}
    return faulty


async def test_a_trickling_answer_is_cut_at_the_deadline_and_the_next_attempt_answers(
    trickling, funded, ahttp
):
    trickling.script("openrouter", "trickle")
    trickling.script("openai", "ok")
    started = time.monotonic()
    response = await ahttp.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["choices"][0]["message"]["content"]
    # The OpenRouter attempt was given its 1 s, not the ~60 s its trickle would take.
    assert 0.9 <= elapsed < 4, elapsed
    assert trickling.count("openrouter") == 1 and trickling.count("openai") == 1


async def test_the_deadline_is_per_provider(trickling, funded, ahttp, settings):
    settings.UPSTREAM_DEADLINE_SECONDS = 30.0
    settings.PROVIDER_TIMEOUTS = {
        "openrouter": {"connect": 5.0, "read": 5.0, "deadline": 0.5},
        "openai": {"connect": 5.0, "read": 5.0, "deadline": 0.5},
    }
    trickling.script("openrouter", "trickle")
    trickling.script("openai", "trickle")
    before = await _async_state(funded)
    started = time.monotonic()
    response = await ahttp.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.content
    assert json.loads(response.content)["error"]["code"] == "upstream_timeout"
    assert elapsed < 3, elapsed
    after = await _async_state(funded)
    assert after[0]["balance"] == before[0]["balance"] and after[1] == 0


async def test_a_stream_that_never_sends_an_event_fails_over_at_the_deadline(trickling, funded, ahttp):
    trickling.script("openrouter", "stream_trickle")
    trickling.script("openai", "ok_stream")
    started = time.monotonic()
    response = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert response.status_code == 200
    assert "data: [DONE]" in text and '"error"' not in text
    assert time.monotonic() - started < 4


async def test_an_endless_trickling_stream_is_cut_at_the_stream_maximum(trickling, funded, ahttp):
    trickling.script("openrouter", "stream_trickle_events")
    started = time.monotonic()
    response = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    elapsed = time.monotonic() - started
    # Output had started: the stream ends with an error event at 1.5 s, not at the upstream's 60 s.
    assert '"upstream_deadline"' in text or '"upstream_timeout"' in text, text[-500:]
    assert 1.4 <= elapsed < 5, elapsed
    after = await _async_state(funded)
    assert after[1] == 0  # settled for what was relayed, no hold left


async def _async_state(user):
    from asgiref.sync import sync_to_async

    return await sync_to_async(_state)(user)
