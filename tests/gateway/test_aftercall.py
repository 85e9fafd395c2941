"""Records written after the answer (gateway.aftercall) and DB steps on the shared threads (gateway.db),
through the production ASGI application as uvicorn runs it."""

from __future__ import annotations

import logging
import threading
import uuid
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async

from tests.gateway.conftest import OPENROUTER_HOST, balance, json_response, openrouter_completion

BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


def usage_rows():
    from monitoring.models import UsageRecord

    return list(UsageRecord.objects.order_by("id"))


def _usage(user_id: int, request_id: str, **overrides) -> dict:
    fields = {
        "user_id": user_id,
        "api_key_id": None,
        "request_id": request_id,
        "model": "openai/gpt-4o",
        "provider": "openrouter",
        "task_type": "simple",
        "route": "explicit",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cost_usd": Decimal("0.000125"),
        "credits": 125_000,
        "hold": 200_000,
        "latency_ms": 5,
        "ttft_ms": None,
        "attempts": [],
        "status": "ok",
    }
    return {**fields, **overrides}


async def _post(client_headers, count: int = 1):
    from smartspec.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [
            await client.post("/v1/chat/completions", json=BODY, headers=client_headers) for _ in range(count)
        ]


@pytest.mark.django_db(transaction=True)
async def test_deferred_usage_rows_and_health_are_written_after_the_answer(
    providers, funded_user, api_key, settings, monkeypatch
):
    from gateway import aftercall
    from monitoring.services import ProviderHealthMonitor

    settings.GATEWAY_DEFER_RECORDS = True
    settings.GATEWAY_RECORDS_DELAY_MS = 0
    release = threading.Event()
    write = aftercall._records_write
    batches = []

    def held_write(batch):
        assert release.wait(timeout=10)
        batches.append(len(batch))
        write(batch)

    monkeypatch.setattr(aftercall, "_records_write", held_write)
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))

    responses = await _post({"Authorization": f"Bearer {api_key}"}, count=3)

    assert [r.status_code for r in responses] == [200, 200, 200]
    # Answered and charged while no usage row exists yet: the charge never waits for monitoring.
    assert (await sync_to_async(balance)(funded_user))["balance"] == 100_000_000 - 3 * 125_000
    assert await sync_to_async(usage_rows)() == []
    release.set()
    assert await sync_to_async(aftercall.call_records_flush)()
    rows = await sync_to_async(usage_rows)()
    assert sorted(r.request_id for r in rows) == sorted(r.headers["X-Request-ID"] for r in responses)
    assert {(r.credits, r.status, r.provider) for r in rows} == {(125_000, "ok", "openrouter")}
    # The first drain took one call; the two queued behind it went in one INSERT.
    assert batches == [1, 2]
    health = {
        (h["provider"], h["model"]): h
        for h in await sync_to_async(ProviderHealthMonitor().get_all_provider_health)()
    }
    assert health[("openrouter", "openai/gpt-4o")]["requests"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_bad_record_in_a_batch_loses_only_itself_and_is_logged(funded_user, settings, caplog):
    from gateway.aftercall import CallRecord, _records_write

    good = [CallRecord(usage=_usage(funded_user.pk, uuid.uuid4().hex), health=()) for _ in range(2)]
    bad = CallRecord(usage=_usage(funded_user.pk, "bad-row", credits=1.5), health=())

    with caplog.at_level(logging.WARNING, logger="gateway.aftercall"):
        _records_write([good[0], bad, good[1]])

    assert sorted(r.request_id for r in usage_rows()) == sorted(g.usage["request_id"] for g in good)
    assert "recording usage failed for request bad-row" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_replayed_record_keeps_the_first_row(funded_user):
    from gateway.aftercall import CallRecord, _records_write

    _records_write([CallRecord(usage=_usage(funded_user.pk, "same", credits=1_000), health=())])
    _records_write([CallRecord(usage=_usage(funded_user.pk, "same", credits=9_999), health=())])

    assert [(r.request_id, r.credits) for r in usage_rows()] == [("same", 1_000)]


@pytest.mark.django_db(transaction=True)
async def test_db_steps_run_on_the_shared_threads_not_a_thread_per_request(
    providers, funded_user, api_key, settings, monkeypatch
):
    from billing import services as billing_services

    threads = []
    hold_place = billing_services.hold_place

    def spy(**kwargs):
        threads.append(threading.current_thread().name)
        return hold_place(**kwargs)

    monkeypatch.setattr("gateway.service.hold_place", spy)
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))

    responses = await _post({"Authorization": f"Bearer {api_key}"}, count=3)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(threads) == 3 and all(name.startswith("gateway-db") for name in threads), threads
    rows = await sync_to_async(usage_rows)()
    assert len(rows) == 3


@pytest.mark.django_db(transaction=True)
def test_the_drain_gathers_records_for_its_delay_and_writes_them_at_once(funded_user, settings, monkeypatch):
    from gateway import aftercall
    from gateway.aftercall import CallRecord, call_record

    settings.GATEWAY_DEFER_RECORDS = True
    settings.GATEWAY_RECORDS_DELAY_MS = 300
    write = aftercall._records_write
    batches = []

    def counted_write(batch):
        batches.append(len(batch))
        write(batch)

    monkeypatch.setattr(aftercall, "_records_write", counted_write)
    ids = [uuid.uuid4().hex for _ in range(5)]
    for request_id in ids:
        call_record(record=CallRecord(usage=_usage(funded_user.pk, request_id), health=()))
    # Nothing written while the drain gathers.
    assert usage_rows() == []
    assert aftercall.call_records_flush(timeout=10)

    assert batches == [5]
    assert sorted(r.request_id for r in usage_rows()) == sorted(ids)
