"""Upstream faults over the real transport: each is failed over as DESIGN.md says, answered 502/504
when every attempt fails, charged correctly (nothing for nothing, the produced part of a cut stream)
and fed to provider health; the circuit breaker keeps a dead provider from costing every call a
timeout; with the shared state store down the gateway fails closed."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import sync_to_async

from billing.credits import usd_to_micro
from tests.reliability.conftest import PROVIDER_LIMIT
from tests.reliability.fake_upstream import STREAM_PIECES, Blackhole, refused_url

HELLO = [{"role": "user", "content": "Say hello"}]
# Async views reach the database from sync_to_async's thread: real commits are needed.
pytestmark = pytest.mark.django_db(transaction=True)

# What each injected fault becomes once mapped by the transport and the adapter.
FAULTS = {
    "429": "UpstreamRateLimited",
    "500": "UpstreamUnavailable",
    "503": "UpstreamUnavailable",
    "not_json": "UpstreamUnavailable",
    "read_timeout": "UpstreamTimeout",
    "refused": "UpstreamUnavailable",
    "connect_timeout": "UpstreamTimeout",
}


def _money(user) -> dict:
    from billing.models import CreditHold, LedgerEntry
    from billing.selectors import balance_get
    from monitoring.models import UsageRecord

    return {
        **balance_get(user=user),
        "usage_entries": LedgerEntry.objects.filter(account__user=user, kind="usage").count(),
        "open_holds": CreditHold.objects.filter(state="held").count(),
        "records": list(UsageRecord.objects.order_by("id").values("status", "provider", "credits")),
    }


money = sync_to_async(_money)


def _openai_direct_cost() -> int:
    """OpenAI's own answer has no cost: 20 prompt + 10 completion tokens at the catalog's gpt-4o prices."""
    from gateway.catalog import catalog_models_get

    model = catalog_models_get(model_ids=["openai/gpt-4o"])["openai/gpt-4o"]
    return usd_to_micro(20 * model.prompt_price + 10 * model.completion_price)


def _health() -> dict:
    from monitoring.health import ProviderHealthMonitor

    return {
        row["provider"]: row for row in ProviderHealthMonitor().get_all_provider_health() if not row["model"]
    }


health = sync_to_async(_health)


def _point_openrouter_at(settings, fault: str, fake) -> Blackhole | None:
    """Refused and connect-timeout faults are addresses, not answers."""
    if fault == "refused":
        settings.OPENROUTER_BASE_URL = refused_url("/api/v1")
    elif fault == "connect_timeout":
        hole = Blackhole()
        settings.OPENROUTER_BASE_URL = hole.url("/api/v1")
        return hole
    else:
        fake.script("openrouter", fault)
    return None


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_fault_fails_over_to_the_direct_provider_and_charges_only_the_answer(
    faulty, settings, funded, ahttp, fault
):
    hole = _point_openrouter_at(settings, fault, faulty)
    faulty.script("openai", "ok")
    before = await money(funded)
    try:
        started = time.monotonic()
        r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
        elapsed = time.monotonic() - started
    finally:
        if hole:
            hole.close()

    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["provider"], body["content"], body["fallback_used"]) == ("openai", "Direct hello", True)
    assert [(a["provider"], a["status"], a["error_class"]) for a in body["attempts"]] == [
        ("openrouter", "error", FAULTS[fault]),
        ("openai", "ok", ""),
    ]
    # The per-provider limit (0.5 s) applies, not the global 30 s (generous: the machine is shared).
    assert elapsed < 20 * PROVIDER_LIMIT
    cost = await sync_to_async(_openai_direct_cost)()
    after = await money(funded)
    assert before["balance"] - after["balance"] == cost == int(body["credits_charged"].replace(".", ""))
    assert after["usage_entries"] == before["usage_entries"] + 1
    assert (after["held"], after["open_holds"]) == (0, 0)
    rows = await health()
    assert rows["openrouter"]["failures"] == 1 and rows["openrouter"]["last_error"] == FAULTS[fault]
    assert rows["openai"]["failures"] == 0 and rows["openai"]["requests"] == 1


@pytest.mark.parametrize(
    ("openrouter", "openai", "status"),
    [("503", "not_json", 502), ("429", "500", 502), ("read_timeout", "read_timeout", 504)],
)
async def test_every_attempt_failing_is_502_or_504_and_costs_nothing(
    faulty, funded, ahttp, openrouter, openai, status
):
    faulty.script("openrouter", openrouter)
    faulty.script("openai", openai)
    before = await money(funded)

    r = await ahttp.post("/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    # No raw upstream body reaches the client.
    assert "Upstream is having trouble" not in r.content.decode() and "<html>" not in r.content.decode()
    after = await money(funded)
    assert (after["balance"], after["usage_entries"]) == (before["balance"], before["usage_entries"])
    assert (after["held"], after["open_holds"]) == (0, 0)
    assert [(row["status"], row["credits"]) for row in after["records"]] == [("error", 0)]
    assert faulty.count("openrouter") == 1 and faulty.count("openai") == 1


async def _sse(response) -> list:
    raw = b"".join([part async for part in response.streaming_content]).decode()
    return [
        block[len("data: ") :] if block == "data: [DONE]" else json.loads(block[len("data: ") :])
        for block in raw.split("\n\n")
        if block.startswith("data: ")
    ]


async def test_a_whole_stream_is_charged_its_reported_cost(faulty, funded, ahttp):
    faulty.script("openrouter", "ok_stream")
    before = await money(funded)

    r = await ahttp.post(
        "/v1/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    events = await _sse(r)

    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.get("choices"))
    assert text == "".join(STREAM_PIECES) and events[-1] == "[DONE]"
    after = await money(funded)
    # OpenRouter's usage chunk says $0.000042: 42,000 micro-credits, exactly.
    assert before["balance"] - after["balance"] == usd_to_micro("0.000042") == 42_000
    assert (after["held"], after["open_holds"]) == (0, 0)


@pytest.mark.parametrize(
    ("fault", "error_class"), [("stream_cut", "UpstreamUnavailable"), ("stream_stall", "UpstreamTimeout")]
)
async def test_a_stream_broken_midway_is_charged_for_what_was_produced(
    faulty, funded, ahttp, fault, error_class
):
    faulty.script("openrouter", fault)
    faulty.script("openai", "ok_stream")
    before = await money(funded)

    started = time.monotonic()
    r = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    events = await _sse(r)
    elapsed = time.monotonic() - started

    contents = [
        e["choices"][0]["delta"].get("content") for e in events if isinstance(e, dict) and e.get("choices")
    ]
    assert contents[:2] == list(STREAM_PIECES[:2])
    assert "error" in events[-1]  # the OpenAI SDK raises on an error event
    # Output had started: no fallback (the client holds part of an answer).
    assert faulty.count("openai") == 0
    assert elapsed < 20 * PROVIDER_LIMIT
    after = await money(funded)
    charged = before["balance"] - after["balance"]
    # No usage came: 80 produced bytes are 20 estimated tokens at gpt-4o's $0.00001, plus the prompt.
    assert charged > 20 * 10_000
    assert after["usage_entries"] == before["usage_entries"] + 1
    assert (after["held"], after["open_holds"]) == (0, 0)
    (record,) = after["records"]
    assert record["status"] == "error" and record["credits"] == charged
    rows = await health()
    assert rows["openrouter"]["last_error"] == error_class


async def test_a_stream_failing_before_its_first_byte_falls_back(faulty, funded, ahttp):
    faulty.script("openrouter", "503")
    faulty.script("openai", "ok_stream")

    r = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    events = await _sse(r)

    assert events[-1] == "[DONE]" and not any("error" in e for e in events if isinstance(e, dict))
    assert (faulty.count("openrouter"), faulty.count("openai")) == (1, 1)
    after = await money(funded)
    assert after["usage_entries"] == 1 and after["held"] == 0


async def test_circuit_breaker_opens_skips_the_dead_provider_then_half_opens_and_closes(
    faulty, settings, funded, ahttp
):
    hole = Blackhole()
    settings.OPENROUTER_BASE_URL = hole.url("/api/v1")
    faulty.script("openai", "ok")
    try:
        # Three connect timeouts in a row (HEALTH_DOWN_AFTER): each call paid one 0.5 s timeout.
        for _ in range(3):
            r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
            assert r.status_code == 200 and r.json()["provider"] == "openai"
        rows = await health()
        assert rows["openrouter"]["circuit"] == "open" and rows["openrouter"]["down"] is True

        # Open: the next calls do not touch OpenRouter at all, so they pay no timeout.
        for _ in range(5):
            r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
            assert r.status_code == 200
            first = r.json()["attempts"][0]
            assert (first["provider"], first["status"], first["latency_ms"]) == ("openrouter", "skipped", 0)
            assert first["reason"].startswith("circuit open")
    finally:
        hole.close()

    # The cooldown is over and OpenRouter is back: one trial per call until HEALTH_UP_AFTER successes.
    settings.OPENROUTER_BASE_URL = faulty.url("openrouter", "/api/v1")
    faulty.script("openrouter", "ok")
    settings.CIRCUIT_COOLDOWN_SECONDS = 0
    assert (await health())["openrouter"]["circuit"] == "half_open"
    for expected in ("half_open", "closed"):
        r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
        assert r.status_code == 200 and r.json()["provider"] == "openrouter"
        assert (await health())["openrouter"]["circuit"] == expected
    assert faulty.count("openrouter") == 2
    after = await money(funded)
    assert (after["held"], after["open_holds"], after["usage_entries"]) == (0, 0, 10)


@pytest.mark.django_db
def test_half_open_lets_one_trial_through_at_a_time(faulty, settings):
    from monitoring.health import ProviderHealthMonitor

    monitor = ProviderHealthMonitor()
    for _ in range(3):
        monitor.record_attempt(
            provider="openrouter", model="", ok=False, latency_ms=500, error_class="UpstreamTimeout"
        )
    assert monitor.circuit_states(["openrouter"]) == {"openrouter": "open"}
    settings.CIRCUIT_COOLDOWN_SECONDS = 0
    monitor = ProviderHealthMonitor()
    assert monitor.circuit_states(["openrouter"]) == {"openrouter": "half_open"}
    # A second caller while the trial is out is kept away.
    assert monitor.circuit_states(["openrouter"]) == {"openrouter": "open"}
    # The trial fails: still down, and the next caller gets the next trial.
    monitor.record_attempt(
        provider="openrouter", model="", ok=False, latency_ms=500, error_class="UpstreamTimeout"
    )
    assert monitor.circuit_states(["openrouter"]) == {"openrouter": "half_open"}


async def test_every_provider_open_is_an_immediate_502_with_no_upstream_call_and_no_charge(
    faulty, settings, funded, ahttp
):
    from monitoring.health import ProviderHealthMonitor

    def trip():
        monitor = ProviderHealthMonitor()
        for provider in ("openrouter", "openai"):
            for _ in range(3):
                monitor.record_attempt(
                    provider=provider, model="", ok=False, latency_ms=500, error_class="UpstreamTimeout"
                )

    await sync_to_async(trip)()
    before = await money(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 502 and r.json()["error"]["code"] == "circuit_open"
    assert faulty.count() == 0
    after = await money(funded)
    assert (after["balance"], after["held"], after["usage_entries"]) == (before["balance"], 0, 0)


async def test_requests_the_upstream_rejects_do_not_trip_the_breaker(faulty, funded, ahttp):
    faulty.script("openrouter", "400")
    for _ in range(4):
        r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
        assert r.status_code == 400
    rows = await health()
    assert rows["openrouter"]["circuit"] == "closed" and rows["openrouter"]["consecutive_failures"] == 0
    after = await money(funded)
    assert (after["balance"], after["usage_entries"]) == (100 * 1_000_000, 0)


async def test_redis_down_is_503_and_no_upstream_is_called(faulty, settings, funded, ahttp):
    """With Redis configured but unreachable the provider state is unknown: fail closed."""
    settings.REDIS_URL = refused_url("/0").replace("http://", "redis://")
    faulty.script("openrouter", "ok")
    before = await money(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})

    assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    assert faulty.count() == 0
    after = await money(funded)
    assert (after["balance"], after["held"], after["usage_entries"]) == (before["balance"], 0, 0)


async def test_a_half_open_provider_gets_its_trial_stream_and_a_second_caller_is_kept_away(
    faulty, settings, funded, ahttp
):
    from monitoring.health import ProviderHealthMonitor

    def trip():
        monitor = ProviderHealthMonitor()
        for _ in range(3):
            monitor.record_attempt(
                provider="openrouter", model="", ok=False, latency_ms=500, error_class="UpstreamTimeout"
            )

    await sync_to_async(trip)()
    settings.CIRCUIT_COOLDOWN_SECONDS = 0
    faulty.script("openrouter", "ok_stream")
    faulty.script("openai", "ok_stream")
    # Another call holds the trial right now: this one goes straight to the direct provider.
    assert await sync_to_async(lambda: ProviderHealthMonitor().circuit_states(["openrouter"]))() == {
        "openrouter": "half_open"
    }
    r = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    assert (await _sse(r))[-1] == "[DONE]"
    assert (faulty.count("openrouter"), faulty.count("openai")) == (0, 1)

    # That trial ended (its outcome was recorded): the next stream is the trial and goes to OpenRouter.
    await sync_to_async(
        lambda: ProviderHealthMonitor().record_attempt(
            provider="openrouter", model="", ok=True, latency_ms=90
        )
    )()
    r = await ahttp.post(
        "/v1/chat/completions", {"model": "openai/gpt-4o", "messages": HELLO, "stream": True}
    )
    assert (await _sse(r))[-1] == "[DONE]"
    assert (faulty.count("openrouter"), faulty.count("openai")) == (1, 1)
    assert (await health())["openrouter"]["circuit"] == "closed"  # HEALTH_UP_AFTER = 2 successes
    after = await money(funded)
    assert (after["usage_entries"], after["held"]) == (2, 0)


def _keyed_client(raw_key: str):
    from django.test import AsyncClient

    client = AsyncClient()

    async def post(path, data):
        return await client.post(
            path, data, content_type="application/json", headers={"Authorization": f"Bearer {raw_key}"}
        )

    return post


async def test_one_callers_failures_do_not_open_the_circuit_for_everyone(
    faulty, settings, funded, ahttp, other_user
):
    """Three timeouts of one caller's calls are that caller's trouble until another caller fails too:
    only then (CIRCUIT_MIN_CALLERS = 2, the default) is OpenRouter taken out of everyone's route."""
    from gateway.keys import api_key_create
    from tests.gateway.conftest import grant

    settings.CIRCUIT_MIN_CALLERS = 2
    await sync_to_async(grant)(other_user, 100)
    _, other_key = await sync_to_async(api_key_create)(user=other_user, name="other")
    other = _keyed_client(other_key)
    faulty.script("openrouter", "read_timeout")
    faulty.script("openai", "ok")
    for _ in range(3):
        r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
        assert r.status_code == 200 and r.json()["provider"] == "openai"
    rows = await health()
    assert rows["openrouter"]["failures"] == 3 and rows["openrouter"]["circuit"] == "closed"

    # The other caller still gets OpenRouter tried (it times out for them too) ...
    r = await other("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
    assert r.status_code == 200, r.content
    first = r.json()["attempts"][0]
    assert (first["provider"], first["status"]) == ("openrouter", "error")
    assert faulty.count("openrouter") == 4
    # ... and now that two callers saw it fail, the circuit is open for both.
    assert (await health())["openrouter"]["circuit"] == "open"
    for post in (ahttp.post, other):
        r = await post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO})
        assert r.json()["attempts"][0]["status"] == "skipped"
    assert faulty.count("openrouter") == 4
