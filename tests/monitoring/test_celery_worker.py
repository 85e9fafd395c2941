"""The probe and the rollup jobs run through a real Celery worker on Redis, against the test database."""

import datetime as dt
import http.server
import json
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from tests.support import celery_worker, subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]

MODELS_BODY = json.dumps(
    {
        "data": [
            {
                "id": "openai/gpt-4o",
                "name": "OpenAI: GPT-4o",
                "context_length": 128000,
                "pricing": {"prompt": "0.0000025", "completion": "0.00001"},
            }
        ]
    }
).encode()


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for OpenRouter: answers its list-models endpoint, refuses anything else."""

    seen: list = []

    def do_GET(self):
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path == "/api/v1/models":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(MODELS_BODY)
        else:
            self.send_error(404)

    def do_POST(self):
        type(self).seen.append((self.command, self.path, None))
        self.send_error(405)

    def log_message(self, *args):
        pass


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_probe_and_rollup_through_a_real_worker(user, make_usage, settings):
    from monitoring.health import ProviderHealthMonitor
    from monitoring.models import DailyUsage, ProviderHealthSnapshot, RollupState

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prefix = f"test-worker-{uuid.uuid4().hex[:8]}"

    now = timezone.now()
    for days_ago, credits in ((2, 1_500_000), (2, 2_500_000), (0, 700_000)):
        make_usage(
            user,
            credits=credits,
            cost_usd=Decimal(credits) / 10**9,
            created_at=now - dt.timedelta(days=days_ago) if days_ago else None,
        )

    env = {
        "DATABASE_URL": subprocess_database_url(),
        "HEALTH_KEY_PREFIX": prefix,
        "OPENROUTER_API_KEY": "sk-or-v1-probe-test",
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{server.server_port}/api/v1",
        # Only the stand-in upstream is configured: nothing reaches the internet.
        "ZAI_API_KEY": "",
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "GOOGLE_API_KEY": "",
        "GROQ_API_KEY": "",
        "OLLAMA_BASE_URL": "",
        "DEBUG": "false",
    }
    try:
        with celery_worker("monitoringtest", env) as app:
            probe = app.send_task("monitoring.probe_providers").get(timeout=90)
            rollup = app.send_task("monitoring.rollup_daily_usage").get(timeout=90)
    finally:
        server.shutdown()

    # The probe: one GET of the models list with the key, no generation call.
    assert probe["skipped"] is False
    assert [(p["provider"], p["ok"]) for p in probe["probed"]] == [("openrouter", True)]
    assert _Upstream.seen == [("GET", "/api/v1/models", "Bearer sk-or-v1-probe-test")]
    settings.HEALTH_KEY_PREFIX = prefix
    monitor = ProviderHealthMonitor()
    try:
        row = next(r for r in monitor.get_all_provider_health() if r["provider"] == "openrouter")
        assert row["probe_ok"] is True and row["requests"] == 0
    finally:
        monitor.clear()
    assert ProviderHealthSnapshot.objects.get(provider="openrouter", model="").probe_ok is True

    # The rollup: the day two days back is summed and closed; today is summed but stays open.
    two_days_ago = (now - dt.timedelta(days=2)).date()
    assert two_days_ago.isoformat() in rollup["days"]
    old = DailyUsage.objects.get(user=user, day=two_days_ago)
    assert (old.requests, old.credits) == (2, 4_000_000)
    assert DailyUsage.objects.get(user=user, day=now.date()).credits == 700_000
    closed = RollupState.objects.get(name="daily_usage").closed_through
    assert closed is not None and two_days_ago <= closed < now.date()
