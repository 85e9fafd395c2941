"""Reconciliation against a fake OpenRouter generation endpoint (a real HTTP server on 127.0.0.1):
calls made through the billed pipeline are checked with `python manage.py reconcile_usage` and
the service, then read back on the receipt (`GET /v1/generation`) and the staff page."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command

from tests.gateway.conftest import OPENROUTER_HOST, json_response, openrouter_completion

pytestmark = pytest.mark.django_db

HI = [{"role": "user", "content": "Hi"}]


class FakeOpenRouter:
    """OpenRouter's `GET /api/v1/generation?id=`: {"data": {...}} for known ids, 404 otherwise;
    `down` answers 503 to everything."""

    def __init__(self):
        self.generations: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []  # (generation id, authorization header)
        self.down = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                ident = (parse_qs(url.query).get("id") or [""])[0]
                fake.requests.append((ident, self.headers.get("Authorization", "")))
                if fake.down:
                    return self._answer(503, {"error": {"code": 503, "message": "Service Unavailable"}})
                if url.path != "/api/v1/generation" or ident not in fake.generations:
                    return self._answer(404, {"error": {"code": 404, "message": "Generation not found"}})
                return self._answer(200, {"data": fake.generations[ident]})

            def _answer(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/api/v1"

    def record(self, gen_id: str, total_cost: str, model: str = "openai/gpt-4o", **extra) -> None:
        # The shape OpenRouter documents for GET /api/v1/generation (`total_cost` a JSON number).
        self.generations[gen_id] = {
            "id": gen_id,
            "total_cost": float(total_cost),
            "created_at": "2026-12-04T20:00:00.000Z",
            "model": model,
            "origin": "",
            "usage": float(total_cost),
            "is_byok": False,
            "upstream_id": "chatcmpl-upstream",
            "cache_discount": None,
            "app_id": None,
            "streamed": False,
            "cancelled": False,
            "provider_name": "OpenAI",
            "latency": 812,
            "moderation_latency": None,
            "generation_time": 700,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "tokens_prompt": 14,
            "tokens_completion": 9,
            "native_tokens_prompt": 14,
            "native_tokens_completion": 9,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": 0,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            **extra,
        }


@pytest.fixture
def openrouter_records(settings):
    fake = FakeOpenRouter()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    settings.RECONCILE_DELAY_SECONDS = 0
    settings.RECONCILE_RATE_PER_SECOND = 1000.0
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def _call(providers, http, *, request_id: str, gen_id: str, cost: str, model: str = "openai/gpt-4o") -> dict:
    """One billed call through OpenRouter answering with generation `gen_id` at `cost`."""
    answer = {**openrouter_completion(model=model, cost=cost), "id": gen_id}
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    r = http.post(
        "/v1/chat/completions",
        {"model": model, "messages": HI, "max_tokens": 50},
        content_type="application/json",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert r.status_code == 200, r.content
    return r.json()


def _reconcile(settings, fake, *args) -> str:
    settings.OPENROUTER_BASE_URL = fake.base_url  # the chat calls above went to the mocked network
    out = StringIO()
    call_command("reconcile_usage", *args, stdout=out)
    return out.getvalue()


def _receipt(http, request_id: str) -> dict:
    r = http.get("/v1/generation", {"id": request_id})
    assert r.status_code == 200, r.content
    return json.loads(r.content, parse_float=Decimal)["data"]


def test_matching_call_is_matched_and_a_ten_percent_difference_is_drift(
    providers, funded_user, http, openrouter_records, settings, client, django_user_model
):
    fake = openrouter_records
    _call(providers, http, request_id="call-match", gen_id="gen-match", cost="0.000125")
    _call(providers, http, request_id="call-drift", gen_id="gen-drift", cost="0.0001")
    fake.record("gen-match", "0.000125")
    fake.record("gen-drift", "0.00011")  # OpenRouter's record says 10% more than it told us

    assert _receipt(http, "call-match")["reconciliation"] == {"status": "pending"}
    out = _reconcile(settings, fake)

    assert "2 checked, 1 matched, 1 drift, 0 pending" in out
    # Our key went along; OpenRouter was asked by its own generation ids.
    assert sorted(i for i, _ in fake.requests) == ["gen-drift", "gen-match"]
    assert all(auth == "Bearer sk-or-v1-test-openrouter-key" for _, auth in fake.requests)
    matched = _receipt(http, "call-match")["reconciliation"]
    assert matched["status"] == "matched"
    assert matched["upstream_total_cost"] == matched["charged_usd"] == Decimal("0.000125")
    drift = _receipt(http, "call-drift")["reconciliation"]
    assert drift["status"] == "drift"
    assert (drift["charged_usd"], drift["upstream_total_cost"]) == (Decimal("0.0001"), Decimal("0.00011"))
    assert drift["difference_usd"] == Decimal("0.00001")

    # The staff totals: charged, recorded, OpenRouter's figure, the drift, the margin after markup.
    staff = django_user_model.objects.create_user("staff-money", password="x", is_staff=True)
    client.force_login(staff)
    html = client.get("/staff/").content.decode()
    assert 'data-testid="credits-charged">0.225 credits for 2 calls' in html
    assert 'data-testid="cost-recorded">$0.000225<' in html
    assert 'data-testid="cost-openrouter">$0.000235 for 2 reconciled calls · 1 matched, 1 drift' in html
    assert 'data-testid="drift"><span class="bad">1 calls, OpenRouter − charged = $0.00001<' in html
    # 0.225 credits sold for 0.000225 x 1.15 = $0.00025875; OpenRouter's cost $0.000235.
    assert 'data-testid="margin">$0.00002375<' in html

    # Idempotent: a second run fetches nothing (decided rows are never asked again).
    asked = len(fake.requests)
    assert "0 checked" in _reconcile(settings, fake)
    assert len(fake.requests) == asked


def test_openrouter_down_leaves_pending_and_never_errors(
    providers, funded_user, http, openrouter_records, settings
):
    from monitoring.models import UsageReconciliation

    fake = openrouter_records
    _call(providers, http, request_id="call-a", gen_id="gen-a", cost="0.000125")
    _call(providers, http, request_id="call-b", gen_id="gen-b", cost="0.000125")
    fake.record("gen-a", "0.000125")
    fake.record("gen-b", "0.000125")
    fake.down = True

    out = _reconcile(settings, fake)

    # The run stops at the first failure: one request, not one per call.
    assert len(fake.requests) == 1 and "Stopped early: OpenRouter unavailable (HTTP 503)" in out
    for request_id in ("call-a", "call-b"):
        assert _receipt(http, request_id)["reconciliation"]["status"] == "pending"
    row = UsageReconciliation.objects.get()
    assert row.status == "pending" and row.last_error == "HTTP 503"

    # Nothing listening at all: still no error, still pending.
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9/api/v1"
    out = StringIO()
    call_command("reconcile_usage", stdout=out)
    assert "Stopped early" in out.getvalue()

    # Back up: a pending call is retried once its back-off has passed, and then decided.
    fake.down = False
    UsageReconciliation.objects.update(next_check_at="2000-01-01T00:00:00Z")
    assert "2 checked, 2 matched" in _reconcile(settings, fake)


def test_no_record_stays_pending_then_unavailable_and_catalog_drift_is_flagged(
    providers, funded_user, http, openrouter_records, settings, client, django_user_model
):
    from monitoring.models import UsageReconciliation
    from monitoring.reconciliation import usage_reconcile

    fake = openrouter_records
    settings.RECONCILE_MAX_TRIES = 2
    _call(providers, http, request_id="call-missing", gen_id="gen-missing", cost="0.000125")
    _call(providers, http, request_id="call-stale", gen_id="gen-stale", cost="0.000125")
    # OpenRouter billed $0.000125 for 14 + 9 tokens; the catalog's gpt-4o prices say 14 x 2.50 + 9 x 10
    # per 1M = $0.000125 too; a record of $0.0002 makes both our charge and our catalog figure drift.
    fake.record("gen-stale", "0.0002")
    settings.OPENROUTER_BASE_URL = fake.base_url

    first = usage_reconcile()
    assert (first["checked"], first["pending"], first["drift"]) == (2, 1, 1)
    assert first["catalog_drift_models"] == ["openai/gpt-4o"]
    UsageReconciliation.objects.filter(status="pending").update(next_check_at="2000-01-01T00:00:00Z")
    second = usage_reconcile()
    assert (second["checked"], second["unavailable"]) == (1, 1)
    assert _receipt(http, "call-missing")["reconciliation"]["status"] == "unavailable"

    staff = django_user_model.objects.create_user("staff-drift", password="x", is_staff=True)
    client.force_login(staff)
    html = client.get("/staff/").content.decode()
    assert 'data-testid="catalog-drift"' in html and "openai/gpt-4o" in html


def test_a_run_is_bounded_and_rate_limited(providers, funded_user, http, openrouter_records, settings):
    from monitoring.reconciliation import usage_reconcile

    fake = openrouter_records
    for i in range(3):
        _call(providers, http, request_id=f"call-{i}", gen_id=f"gen-{i}", cost="0.000125")
        fake.record(f"gen-{i}", "0.000125")
    settings.OPENROUTER_BASE_URL = fake.base_url
    settings.RECONCILE_RATE_PER_SECOND = 2.0
    waits: list[float] = []

    report = usage_reconcile(batch=2, sleep=waits.append)

    assert report["checked"] == 2 and len(fake.requests) == 2
    # Two requests at 2 per second: the second waited about half a second after the first.
    assert len(waits) == 1 and 0.3 < waits[0] <= 0.5
    assert usage_reconcile(sleep=waits.append)["checked"] == 1


def test_direct_provider_calls_are_not_asked_and_say_why(
    providers, funded_user, http, openrouter_records, settings
):
    from tests.gateway.conftest import OPENAI_HOST, openai_completion

    providers.on(OPENAI_HOST, lambda req, body: json_response(200, openai_completion()))
    r = http.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": HI, "use_openrouter": False},
        content_type="application/json",
        HTTP_X_REQUEST_ID="direct-1",
    )
    assert r.status_code == 200
    assert "0 checked" in _reconcile(settings, openrouter_records)
    assert openrouter_records.requests == []
    reconciliation = _receipt(http, "direct-1")["reconciliation"]
    assert reconciliation["status"] == "unavailable" and "openai" in reconciliation["reason"]


def test_since_is_parsed_and_bad_values_are_refused(settings):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("reconcile_usage", "--since", "yesterday-ish", stdout=StringIO())
    settings.OPENROUTER_API_KEY = ""
    out = StringIO()
    call_command("reconcile_usage", "--since", "48h", stdout=out)
    assert "skipped: OpenRouter is not configured" in out.getvalue()
    call_command("reconcile_usage", "--since", "2026-12-01", stdout=out)


def test_a_malformed_record_is_not_a_verdict(providers, funded_user, http, openrouter_records, settings):
    from monitoring.reconciliation import usage_reconcile

    fake = openrouter_records
    _call(providers, http, request_id="call-odd", gen_id="gen-odd", cost="0.000125")
    fake.record("gen-odd", "0.000125")
    fake.generations["gen-odd"]["total_cost"] = "a lot"  # not a number
    settings.OPENROUTER_BASE_URL = fake.base_url

    report = usage_reconcile()

    assert report["pending"] == 1 and "malformed answer" in report["stopped"]
    assert _receipt(http, "call-odd")["reconciliation"]["status"] == "pending"


def test_staff_totals_read_closed_days_from_the_rollups(user, make_usage):
    import datetime as dt

    from django.utils import timezone

    from monitoring.models import UsageRecord
    from monitoring.selectors import reconciliation_totals
    from monitoring.services import daily_usage_rollup

    now = timezone.now()
    old = make_usage(user, credits=2_000_000, cost_usd=Decimal("0.002"))
    UsageRecord.objects.filter(pk=old.pk).update(created_at=now - dt.timedelta(days=3))
    ancient = make_usage(user, credits=9_000_000, cost_usd=Decimal("0.009"))
    UsageRecord.objects.filter(pk=ancient.pk).update(created_at=now - dt.timedelta(days=40))
    daily_usage_rollup(now=now)  # at most 31 days a run: the second run reaches three days ago
    daily_usage_rollup(now=now)
    # The rolled-up row is read from DailyUsage: deleting the raw row changes nothing.
    UsageRecord.objects.filter(pk=old.pk).delete()
    make_usage(user, credits=750_000, cost_usd=Decimal("0.00075"))  # today, not closed yet

    totals = reconciliation_totals(days=30, now=now + dt.timedelta(seconds=1))

    assert (totals["calls"], totals["credits_charged"]) == (2, 2_750_000)
    assert totals["upstream_cost_recorded"] == Decimal("0.00275")
    # Nothing reconciled: the margin is what 2.75 credits sold for ($0.00275 x 1.15) minus their cost.
    assert totals["margin_usd"] == Decimal("0.00275") * Decimal("1.15") - Decimal("0.00275")
