"""usage_record_create: the row the gateway pipeline writes for every call."""

from decimal import Decimal

import pytest

from monitoring.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_usage_record_keeps_every_field(user, make_usage):
    from gateway.keys import api_key_create

    key, _ = api_key_create(user=user, name="ci")
    attempts = [
        {
            "model": "openai/gpt-4o",
            "provider": "openrouter",
            "status": "error",
            "error_class": "UpstreamTimeout",
            "latency_ms": 30000,
            "reason": "timeout",
            "raw": "dropped",
        },
        {
            "model": "openai/gpt-4o",
            "provider": "openai",
            "status": "ok",
            "error_class": "",
            "latency_ms": 900,
            "reason": "",
        },
    ]
    record = make_usage(
        user,
        api_key_id=key.pk,
        request_id="req-1",
        route="matrix:analysis/balanced",
        prompt_tokens=1200,
        completion_tokens=345,
        cost_usd=Decimal("0.0064500000"),
        credits=6_450_000,
        hold=40_000_000,
        latency_ms=30900,
        ttft_ms=420,
        attempts=attempts,
        stream=True,
        usage_estimated=True,
    )
    row = UsageRecord.objects.get(request_id="req-1")
    assert row.pk == record.pk
    assert (row.user_id, row.api_key_id) == (user.pk, key.pk)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1200, 345, 1545)
    assert row.cost_usd == Decimal("0.0064500000")
    assert (row.credits, row.hold) == (6_450_000, 40_000_000)
    assert (row.latency_ms, row.ttft_ms, row.stream, row.usage_estimated) == (30900, 420, True, True)
    assert row.route == "matrix:analysis/balanced"
    assert len(row.attempts) == 2 and "raw" not in row.attempts[0]
    assert row.attempts[0]["error_class"] == "UpstreamTimeout"


def test_same_request_id_is_recorded_once(user, make_usage):
    first = make_usage(user, request_id="dup", credits=1_000)
    second = make_usage(user, request_id="dup", credits=9_999)
    assert first.pk == second.pk
    assert UsageRecord.objects.filter(request_id="dup").count() == 1
    assert UsageRecord.objects.get(request_id="dup").credits == 1_000


def test_error_record(user, make_usage):
    record = make_usage(
        user,
        status="error",
        error_class="UpstreamUnavailable",
        credits=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=Decimal("0"),
    )
    assert (record.status, record.error_class, record.credits) == ("error", "UpstreamUnavailable", 0)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"status": "weird"}, ValueError),
        ({"credits": 0.75}, TypeError),
        ({"cost_usd": 0.00075}, TypeError),
    ],
)
def test_bad_values_are_refused(user, make_usage, overrides, error):
    with pytest.raises(error):
        make_usage(user, **overrides)
    assert UsageRecord.objects.count() == 0
