"""No upstream can charge more than the call's hold: absurd usage or cost is cut to the call's bounds
(flagged on the usage row, the rest the operator's loss), a stream that runs past `max_tokens` is cut
there and its upstream closed, and a worker's memory does not grow with what a stream relays."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from asgiref.sync import sync_to_async

from billing.credits import usd_to_micro
from tests.reliability.conftest import gateway_env

HELLO = [{"role": "user", "content": "Say hello"}]
pytestmark = pytest.mark.django_db(transaction=True)


def _state(user) -> dict:
    from billing.models import CreditHold
    from billing.selectors import balance_get
    from monitoring.models import UsageRecord

    return {
        **balance_get(user=user),
        "open_holds": CreditHold.objects.filter(state="held").count(),
        "records": list(
            UsageRecord.objects.order_by("id").values(
                "credits", "hold", "usage_capped", "uncharged", "completion_tokens", "status"
            )
        ),
    }


state = sync_to_async(_state)


def _gpt4o():
    from gateway.catalog import catalog_models_get

    return catalog_models_get(model_ids=["openai/gpt-4o"])["openai/gpt-4o"]


@pytest.mark.parametrize("usage", ["usage_absurd", "usage_huge"])
async def test_absurd_usage_is_charged_at_most_max_tokens(faulty, funded, ahttp, usage):
    faulty.script("openrouter", usage)
    before = await state(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 10})

    assert r.status_code == 200, r.content
    # Millions (or billions) claimed, 10 possible: billed as 10, the same whatever the claim (no cliff).
    assert r.json()["usage"]["completion_tokens"] == 10
    after = await state(funded)
    (record,) = after["records"]
    model = await sync_to_async(_gpt4o)()
    expected = usd_to_micro(14 * model.prompt_price + 10 * model.completion_price)
    assert before["balance"] - after["balance"] == record["credits"] == expected
    assert expected <= record["hold"]
    assert record["usage_capped"] is True and record["uncharged"] == 0
    assert (after["held"], after["open_holds"]) == (0, 0)


async def test_an_absurd_cost_is_charged_the_hold_and_the_rest_is_the_operators_loss(faulty, funded, ahttp):
    faulty.script("openrouter", "cost_999")
    before = await state(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 10})

    assert r.status_code == 200, r.content
    after = await state(funded)
    (record,) = after["records"]
    charged = before["balance"] - after["balance"]
    # $999 claimed against 100 credits: the hold (a fraction of a credit) is all that is taken.
    assert 0 < charged == record["credits"] == record["hold"] < 10**6
    assert record["uncharged"] == usd_to_micro(999) - charged
    assert record["usage_capped"] is True
    assert (after["held"], after["open_holds"]) == (0, 0)


async def _sse(response) -> list:
    raw = b"".join([part async for part in response.streaming_content]).decode()
    return [
        json.loads(b[6:]) if b != "data: [DONE]" else "[DONE]" for b in raw.split("\n\n") if b[:6] == "data: "
    ]


@pytest.mark.parametrize(("fault", "max_tokens"), [("stream_endless", 50), ("stream_endless_big", 40)])
async def test_an_endless_stream_is_cut_at_max_tokens_and_billed_at_most_the_hold(
    faulty, funded, ahttp, fault, max_tokens
):
    faulty.script("openrouter", fault)
    before = await state(funded)

    r = await ahttp.post(
        "/v1/chat/completions",
        {
            "model": "openai/gpt-4o",
            "messages": HELLO,
            "stream": True,
            "max_tokens": max_tokens,
            "stream_options": {"include_usage": True},
        },
    )
    events = await _sse(r)

    deltas = [e["choices"][0]["delta"].get("content") for e in events if isinstance(e, dict) and e["choices"]]
    relayed = [d for d in deltas if d]
    # At most one chunk per token, and at most 16 bytes per token of max_tokens.
    assert len(relayed) <= max_tokens
    assert len("".join(relayed).encode()) <= 16 * max_tokens
    finish = [e["choices"][0]["finish_reason"] for e in events if isinstance(e, dict) and e["choices"]]
    assert finish[-1] == "length" and events[-1] == "[DONE]"
    usage = next(e["usage"] for e in events if isinstance(e, dict) and e.get("usage"))
    assert usage["completion_tokens"] <= max_tokens
    # The gateway hung up on the upstream: its sender stopped (it would run for 60 s otherwise).
    deadline = time.monotonic() + 10
    while not faulty.endless_sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(faulty.endless_sent) == 1
    after = await state(funded)
    (record,) = after["records"]
    charged = before["balance"] - after["balance"]
    assert 0 < charged == record["credits"] <= record["hold"]
    assert record["completion_tokens"] <= max_tokens and record["usage_capped"] is True
    assert (after["held"], after["open_holds"]) == (0, 0)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.postgres
def test_a_worker_relaying_huge_streams_keeps_its_memory_flat(fake, catalog, user, api_key):
    """Four streams of 16 MB each (1,000,000 max_tokens x 16 bytes, of 64 KB chunks) through one live
    worker: the worker neither keeps what it relayed nor buffers it, so its memory stays flat."""
    from tests.gateway.conftest import grant
    from tests.support import live_uvicorn_process

    grant(user, 100_000)
    fake.script("openrouter", "stream_endless_big")
    env = gateway_env(fake, MAX_OUTPUT_TOKENS="1000000")
    with live_uvicorn_process(env) as (base, pid):
        headers = {"Authorization": f"Bearer {api_key}"}
        body = {"model": "openai/gpt-4o", "messages": HELLO, "stream": True, "max_tokens": 1_000_000}

        def relay() -> int:
            size = 0
            with httpx.stream(
                "POST", f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60
            ) as r:
                assert r.status_code == 200
                for chunk in r.iter_bytes():
                    size += len(chunk)
            return size

        relay()  # warm up: imports, pools and the first stream's buffers
        baseline = _rss_kb(pid)
        sizes = [relay() for _ in range(4)]
        grown = _rss_kb(pid) - baseline

    # Each stream relayed its 16 MB (plus framing) and stopped there.
    assert all(16_000_000 <= size <= 40_000_000 for size in sizes), sizes
    # 64 MB went through; the worker grew by far less than one stream.
    assert grown < 16 * 1024, f"worker grew {grown} kB while relaying {sum(sizes)} bytes"
    from billing.models import CreditHold

    assert CreditHold.objects.filter(state="held").count() == 0


async def test_a_key_capped_at_12_credits_a_day_is_never_charged_more_by_one_call(
    faulty, funded, ahttp, api_key
):
    """The spend cap reserves the call's hold, and the charge never exceeds the hold: an upstream that
    claims $999 cannot push a capped key past its cap."""
    from gateway.models import ApiKey

    await sync_to_async(ApiKey.objects.update)(credits_per_day=12 * 10**6)
    faulty.script("openrouter", "cost_999")
    before = await state(funded)

    r = await ahttp.post("/api/llm/chat", {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 100})

    assert r.status_code == 200, r.content
    after = await state(funded)
    charged = before["balance"] - after["balance"]
    (record,) = after["records"]
    assert 0 < charged == record["hold"] <= 12 * 10**6
    assert record["uncharged"] == usd_to_micro(999) - charged
