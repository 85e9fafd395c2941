"""GET /metrics (smartspec/metrics.py): real billed calls through the gateway with the providers mocked at
the transport, then a scrape parsed as Prometheus parses it, asserting the figures call by call; the
token; the circuit states; several worker processes summed by one scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.billing import conftest as billing_fixtures
from tests.gateway.conftest import (
    OPENAI_HOST,
    OPENROUTER_HOST,
    _close_worker_thread_connections,  # noqa: F401  (autouse here too)
    json_response,
    openai_completion,
    openrouter_completion,
    openrouter_error,
    openrouter_stream,
    sse_response,
)

# The billing tests' signed-webhook fixtures, for the Stripe counters.
deliver, stripe_settings = billing_fixtures.deliver, billing_fixtures.stripe_settings
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-tests-4c1f"
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello"}]


def scrape(client, token: str = TOKEN) -> dict[tuple[str, frozenset], float]:
    r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 200, r.content
    assert r["Content-Type"].startswith("text/plain")
    return parse(r.content.decode())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def client(metrics_token, api_key):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


def post(http, body, **headers):
    return http.post(CHAT, body, content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)
async def test_a_scrape_after_real_calls_counts_each_of_them(
    providers, funded_user, other_user, api_key, metrics_token
):
    """Through the production ASGI application, as uvicorn serves it."""
    import httpx
    from asgiref.sync import sync_to_async

    from billing.services import adjustment_create
    from gateway.keys import api_key_create
    from monitoring.models import UsageRecord
    from smartspec import metrics
    from smartspec.asgi import application

    seen_in_flight = []

    def openrouter(request, body):
        # During the call: its hold is counted as in flight.
        seen_in_flight.append((metrics.HOLDS_IN_FLIGHT._value.get(), metrics.CREDITS_HELD._value.get()))
        if body.get("stream"):
            return sse_response(openrouter_stream(cost="0.000042"))
        return json_response(200, openrouter_completion(cost="0.000125"))

    def openai(request, body):
        if body["model"] == "gpt-4o":
            return json_response(503, {"error": {"message": "overloaded", "type": "server_error"}})
        return json_response(200, openai_completion(model="gpt-4o-mini"))

    _, poor_key = await sync_to_async(api_key_create)(user=other_user, name="poor")
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {api_key}"}
    ) as client:

        async def scrape_asgi():
            r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, r.content
            assert r.headers["Content-Type"].startswith("text/plain")
            return parse(r.text)

        before = await scrape_asgi()

        # 1. A plain call through OpenRouter.
        providers.on(OPENROUTER_HOST, openrouter)
        r1 = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 50})
        assert r1.status_code == 200, r1.content

        # 2. A stream through OpenRouter: also a time to first token.
        r2 = await client.post(
            CHAT, json={"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 50, "stream": True}
        )
        assert r2.status_code == 200 and "[DONE]" in r2.text

        # 3. Direct providers only: gpt-4o fails at OpenAI, its fallback gpt-4o-mini answers there.
        providers.on(OPENAI_HOST, openai)
        r3 = await client.post(
            CHAT,
            json={
                "model": "openai/gpt-4o",
                "fallback_models": ["openai/gpt-4o-mini"],
                "use_openrouter": False,
                "messages": HELLO,
                "max_tokens": 50,
            },
        )
        assert r3.status_code == 200, r3.content
        assert r3.json()["model"] == "openai/gpt-4o-mini"

        # 4. Every attempt fails: 502, the hold released.
        providers.on(OPENROUTER_HOST, [json_response(502, openrouter_error(502, "bad gateway"))])
        providers.on(
            OPENAI_HOST, [json_response(500, {"error": {"message": "boom", "type": "server_error"}})]
        )
        r4 = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 50})
        assert r4.status_code == 502

        # 5. A caller without credits: 402 before any upstream.
        r5 = await client.post(
            CHAT,
            json={"model": "openai/gpt-4o", "messages": HELLO},
            headers={"Authorization": f"Bearer {poor_key}"},
        )
        assert r5.status_code == 402

        # 6. A bad key: 401, no model known yet.
        r6 = await client.post(
            CHAT,
            json={"model": "openai/gpt-4o", "messages": HELLO},
            headers={"Authorization": "Bearer sk-ss-no"},
        )
        assert r6.status_code == 401

        # 7. Not a pipeline call: a staff credit is one ledger entry.
        await sync_to_async(adjustment_create)(
            user=other_user, amount=5_000_000, actor=None, reason="metrics"
        )

        after = await scrape_asgi()

    req = "smartspec_requests_total"
    assert delta(before, after, req, endpoint=CHAT) == 6
    assert (
        delta(before, after, req, endpoint=CHAT, model="openai/gpt-4o", provider="openrouter", status="200")
        == 2
    )
    assert (
        delta(before, after, req, endpoint=CHAT, model="openai/gpt-4o-mini", provider="openai", status="200")
        == 1
    )
    assert delta(before, after, req, endpoint=CHAT, model="openai/gpt-4o", provider="", status="502") == 1
    assert delta(before, after, req, endpoint=CHAT, model="openai/gpt-4o", provider="", status="402") == 1
    assert delta(before, after, req, endpoint=CHAT, model="", provider="", status="401") == 1
    err = "smartspec_errors_total"
    assert delta(before, after, err, endpoint=CHAT) == 3
    assert delta(before, after, err, status="402", model="openai/gpt-4o") == 1
    assert delta(before, after, err, status="502") == 1
    assert delta(before, after, err, status="401") == 1

    # Latency for the four calls that reached an upstream; time to first token for the one stream.
    duration = "smartspec_request_duration_seconds_count"
    assert delta(before, after, duration, endpoint=CHAT) == 4
    assert delta(before, after, duration, endpoint=CHAT, provider="openrouter") == 2
    assert delta(before, after, "smartspec_time_to_first_token_seconds_count", endpoint=CHAT) == 1
    assert delta(before, after, "smartspec_time_to_first_token_seconds_bucket", le="+Inf") == 1

    # Attempts: openrouter ok x2 then 502 once; openai 503 (call 3), ok (call 3), 500 (call 4).
    att = "smartspec_upstream_attempts_total"
    assert delta(before, after, att, provider="openrouter", outcome="ok") == 2
    assert delta(before, after, att, provider="openrouter", outcome="UpstreamUnavailable") == 1
    assert delta(before, after, att, provider="openai", outcome="ok") == 1
    assert delta(before, after, att, provider="openai", outcome="UpstreamUnavailable") == 2
    assert delta(before, after, att) == 6
    # Retries: gpt-4o-mini at OpenAI after gpt-4o failed (call 3); OpenAI after OpenRouter (call 4).
    assert delta(before, after, "smartspec_upstream_retries_total", provider="openai") == 2
    assert delta(before, after, "smartspec_upstream_retries_total") == 2
    fallbacks = "smartspec_fallbacks_total"
    assert delta(before, after, fallbacks, from_model="openai/gpt-4o", to_model="openai/gpt-4o-mini") == 1
    assert delta(before, after, fallbacks) == 1

    # Holds: each call's worst case was in flight during its upstream request, none is left.
    rows = await sync_to_async(lambda: {r.request_id: r for r in UsageRecord.objects.all()})()
    holds = [rows[r.headers["X-Request-ID"]].hold for r in (r1, r2)]
    base_holds = value(before, "smartspec_holds_in_flight")
    base_credits = value(before, "smartspec_credits_held_micro")
    assert seen_in_flight == [
        (base_holds + 1, base_credits + holds[0]),
        (base_holds + 1, base_credits + holds[1]),
    ]
    assert value(after, "smartspec_holds_in_flight") == base_holds == 0
    assert value(after, "smartspec_credits_held_micro") == base_credits == 0

    # Settles: three charged (calls 1-3), the failed call's hold released; no hold for the 402.
    assert delta(before, after, "smartspec_settles_total", result="charged") == 3
    assert delta(before, after, "smartspec_settles_total", result="released") == 1
    assert delta(before, after, "smartspec_settles_total") == 4
    assert delta(before, after, "smartspec_ledger_entries_total", kind="usage") == 3
    assert delta(before, after, "smartspec_ledger_entries_total", kind="adjustment") == 1
    assert delta(before, after, "smartspec_ledger_entries_total") == 4


@pytest.mark.django_db(transaction=True)
def test_the_deferred_record_queue_depth_is_the_rows_waiting(
    providers, funded_user, client, settings, monkeypatch
):
    from gateway import aftercall

    settings.GATEWAY_DEFER_RECORDS = True
    settings.GATEWAY_RECORDS_DELAY_MS = 0
    release, writing = threading.Event(), threading.Event()
    write = aftercall._records_write

    def held_write(batch):
        writing.set()
        assert release.wait(timeout=10)
        write(batch)

    monkeypatch.setattr(aftercall, "_records_write", held_write)
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    try:
        for _ in range(4):
            assert post(client, {"model": "openai/gpt-4o", "messages": HELLO}).status_code == 200
        assert writing.wait(timeout=10)
        waiting = len(aftercall._queue)
        # The first call's row is being written; the ones queued behind it are waiting.
        assert waiting >= 1
        assert value(scrape(client), "smartspec_record_queue_depth") == waiting
    finally:
        release.set()
        assert aftercall.call_records_flush()
    assert value(scrape(client), "smartspec_record_queue_depth") == 0


@pytest.mark.django_db(transaction=True)
def test_circuit_states_are_read_at_scrape_time(providers, settings, client):
    from monitoring.services import ProviderHealthMonitor

    monitor = ProviderHealthMonitor()
    for _ in range(settings.HEALTH_DOWN_AFTER):
        monitor.record_attempt(
            provider="openai", model="openai/gpt-4o", ok=False, latency_ms=10, output_tokens=0,
            error_class="UpstreamUnavailable", caller="1",
        )  # fmt: skip

    samples = scrape(client)

    state = "smartspec_circuit_state"
    assert value(samples, state, provider="openai", state="open") == 1
    assert value(samples, state, provider="openai", state="closed") == 0
    assert value(samples, state, provider="openrouter", state="closed") == 1
    # One sample per configured provider and state.
    assert value(samples, state) == 6


@pytest.mark.django_db
def test_metrics_need_the_token(client, settings):
    from django.test import Client

    anonymous = Client()
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Token {TOKEN}"}):
        r = anonymous.get("/metrics", **headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_metrics_token"
        assert r.json()["error"]["type"] == "authentication_error"
        assert TOKEN not in r.content.decode()
    assert anonymous.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    # Even from loopback a wrong token is refused once a token is set.
    settings.DEBUG = True
    assert anonymous.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


@pytest.mark.django_db
def test_without_a_token_metrics_answer_only_loopback_in_debug(settings):
    from django.test import Client

    settings.METRICS_TOKEN = ""
    anonymous = Client()
    settings.DEBUG = False
    r = anonymous.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "metrics_token_not_set"
    settings.DEBUG = True
    assert anonymous.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert anonymous.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert anonymous.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_an_empty_multiproc_dir_means_one_process_not_files_in_the_working_directory(tmp_path):
    # `.env` as `make run` copies it from .env.example has the variable present and empty.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smartspec.settings_test", "PROMETHEUS_MULTIPROC_DIR": ""}
    probe = (
        "import django; django.setup()\n"
        "from smartspec import metrics\n"
        "from prometheus_client import values\n"
        "metrics.hold_placed(1)\n"
        "print(values.ValueClass.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "MutexValue"
    assert list(tmp_path.glob("*.db")) == []


WORKER = """
import os, sys
import django
django.setup()
from smartspec import metrics
calls, mode = int(sys.argv[1]), sys.argv[2]
usage = {"model": "openai/gpt-4o", "provider": "openrouter", "status": "ok", "error_class": "",
         "latency_ms": 120, "ttft_ms": None, "hold": 2_000_000, "credits": 125_000,
         "attempts": [{"provider": "openrouter", "status": "ok", "error_class": ""}]}
for _ in range(calls):
    metrics.hold_placed(2_000_000)
    metrics.call_observe(usage=usage, first_model="openai/gpt-4o", journaled=False)
metrics.hold_placed(7_000_000)  # a call still in flight
metrics.record_queue_depth(3)
if mode == "exit":
    metrics.process_exit()  # what the ASGI lifespan does at a clean shutdown
print(os.getpid(), flush=True)
if mode == "stay":
    sys.stdin.read()  # serving until killed
"""


def test_one_scrape_sums_the_worker_processes_and_forgets_dead_ones_live_gauges(tmp_path, monkeypatch):
    from smartspec import metrics

    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "smartspec.settings_test",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }

    def worker(calls: int, mode: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, str(calls), mode], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip

    exited = worker(3, "exit")
    assert exited.wait(timeout=120) == 0
    serving = worker(4, "stay")
    try:
        pid = int(serving.stdout.readline())
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
        alive = parse(metrics.metrics_text().decode())
        assert list(folder.glob(f"gauge_livesum_{pid}.db"))
    finally:
        serving.kill()
        serving.wait(timeout=30)
    dead = parse(metrics.metrics_text().decode())

    for samples in (alive, dead):
        # Counters and histograms of both processes, summed (and kept after a worker is gone).
        assert value(samples, "smartspec_requests_total", provider="openrouter", status="200") == 7
        assert value(samples, "smartspec_request_duration_seconds_count") == 7
        assert value(samples, "smartspec_request_duration_seconds_sum") == pytest.approx(7 * 0.12)
        assert value(samples, "smartspec_settles_total", result="charged") == 7
    # Live gauges: only the serving worker's call in flight and its queue; the one that exited cleanly
    # left the sums at its shutdown, the killed one at the next scrape.
    assert value(alive, "smartspec_holds_in_flight") == 1
    assert value(alive, "smartspec_credits_held_micro") == 7_000_000
    assert value(alive, "smartspec_record_queue_depth") == 3
    assert value(dead, "smartspec_holds_in_flight") == 0
    assert value(dead, "smartspec_credits_held_micro") == 0
    assert value(dead, "smartspec_record_queue_depth") == 0
    assert not list(folder.glob("gauge_livesum_*.db"))


@pytest.mark.django_db(transaction=True)
def test_each_face_is_its_own_endpoint(providers, funded_user, client):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    before = scrape(client)

    assert (
        client.post(
            "/api/llm/chat", {"messages": HELLO, "model": "openai/gpt-4o"}, "application/json"
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/v1/responses", {"input": "Hi", "model": "openai/gpt-4o"}, "application/json"
        ).status_code
        == 200
    )
    assert client.post("/api/llm/chat", {"messages": "no"}, "application/json").status_code == 400

    after = scrape(client)
    req = "smartspec_requests_total"
    assert delta(before, after, req, endpoint="/api/llm/chat", provider="openrouter", status="200") == 1
    assert delta(before, after, req, endpoint="/v1/responses", provider="openrouter", status="200") == 1
    assert delta(before, after, req, endpoint="/api/llm/chat", status="400") == 1
    assert delta(before, after, req) == 3
    assert delta(before, after, "smartspec_settles_total", result="charged") == 2


@pytest.mark.django_db(transaction=True)
def test_stripe_deliveries_owed_collections_and_replayed_settles_are_counted(
    metrics_token, user, deliver, tmp_path, settings, monkeypatch
):
    """The money events outside a call's own path: each Stripe delivery by type and outcome (a bad
    signature is refused unverified), the ledger entry a settle writes when it pays what the account
    owes, and a journaled settle that commits later."""
    from django.test import Client

    from billing import services
    from billing.credits import MICRO_PER_CREDIT as C
    from gateway import settle_journal
    from tests.billing import stripe_shapes as s

    scraper = Client()
    before = scrape(scraper)
    paid = s.event(
        "checkout.session.completed",
        s.checkout_session(user_id=user.pk, cents=10000, session_id="cs_test_m", payment_intent="pi_3M"),
    )
    assert deliver(paid).json()["status"] == "processed"
    assert deliver(paid).json()["status"] == "duplicate"
    assert deliver(paid, signature="t=1,v1=bad").status_code == 400
    owing = services.hold_place(user=user, amount=60_000 * C, request_id="owing-call")
    journaled = services.hold_place(user=user, amount=1, request_id="journaled-call")
    refund = s.event("charge.refunded", s.charge(intent_id="pi_3M", cents=10000, refunded_cents=10000))
    assert deliver(refund).json()["status"] == "processed"
    # The call's end pays 10,000 credits and frees 50,000 of its hold for what the refund left owed.
    services.hold_settle(hold_id=owing.pk, amount=10_000 * C, reference="owing-call")
    settings.SETTLE_JOURNAL_DIR = str(tmp_path)
    monkeypatch.setattr(settle_journal, "replayer_start", lambda: None)
    usage = {
        "user_id": user.pk, "api_key_id": None, "request_id": "journaled-call", "model": "openai/gpt-4o",
        "provider": "openrouter", "task_type": "simple", "route": "explicit", "prompt_tokens": 1,
        "completion_tokens": 1, "cost_usd": "0", "credits": 1, "hold": 1, "latency_ms": 1,
        "ttft_ms": None, "attempts": [], "status": "ok",
    }  # fmt: skip
    settle_journal.settle_journal_add(
        hold_id=journaled.pk, amount=1, description="", reference="journaled-call", usage=usage
    )
    assert settle_journal.settles_replay() == 1
    after = scrape(scraper)

    def events(event_type, status):
        return delta(before, after, "smartspec_stripe_events_total", type=event_type, status=status)

    assert events("checkout.session.completed", "processed") == 1
    assert events("checkout.session.completed", "duplicate") == 1
    assert events("unverified", "refused") == 1
    assert events("charge.refunded", "processed") == 1
    assert delta(before, after, "smartspec_ledger_entries_total", kind="owed_collected") == 1
    # The call's usage and the replayed settle's.
    assert delta(before, after, "smartspec_ledger_entries_total", kind="usage") == 2
    assert delta(before, after, "smartspec_settles_total", result="replayed") == 1
