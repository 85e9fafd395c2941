"""Usage stats add up: every group's counts, tokens and credits equal the sums of the calls made."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from monitoring.models import DailyUsage, RollupState
from monitoring.selectors import LLMMonitoringService
from monitoring.services import daily_usage_rollup

pytestmark = pytest.mark.django_db

NOW = timezone.now()

# (model, provider, task_type, prompt, completion, credits, latency_ms, status, days_ago)
CALLS = [
    ("openai/gpt-4o", "openrouter", "analysis", 100, 50, 750_000, 800, "ok", 0),
    ("openai/gpt-4o", "openrouter", "analysis", 200, 80, 1_300_000, 1200, "ok", 0),
    ("openai/gpt-4o", "openai", "analysis", 150, 60, 990_000, 2600, "ok", 1),
    ("anthropic/claude-3.5-sonnet", "openrouter", "code_generation", 400, 300, 5_700_000, 4000, "ok", 2),
    ("anthropic/claude-3.5-sonnet", "anthropic", "code_generation", 0, 0, 0, 30000, "error", 2),
    ("google/gemini-flash-1.5", "openrouter", "simple", 50, 20, 10_500, 300, "ok", 3),
    ("google/gemini-flash-1.5", "openrouter", "simple", 60, 25, 12_000, 350, "cancelled", 5),
    # Outside a 7-day window, inside 30 days.
    ("openai/gpt-4o", "openrouter", "planning", 1000, 500, 12_500_000, 5000, "ok", 12),
]


def _make_calls(user, make_usage, calls=CALLS):
    for model, provider, task, p, c, credits, latency, status, days_ago in calls:
        make_usage(
            user,
            model=model,
            provider=provider,
            task_type=task,
            prompt_tokens=p,
            completion_tokens=c,
            credits=credits,
            cost_usd=Decimal(credits) / Decimal(1_000_000_000),
            latency_ms=latency,
            status=status,
            created_at=NOW - dt.timedelta(days=days_ago, minutes=1) if days_ago else None,
        )


def _expected(calls, key_index=None):
    groups = {}
    for call in calls:
        key = call[key_index] if key_index is not None else "all"
        g = groups.setdefault(
            key,
            {
                "requests": 0,
                "errors": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "credits_micro": 0,
                "latency": 0,
            },
        )
        g["requests"] += 1
        g["errors"] += call[7] == "error"
        g["prompt_tokens"] += call[3]
        g["completion_tokens"] += call[4]
        g["credits_micro"] += call[5]
        g["latency"] += call[6]
    return groups


def _check_group(row, expected):
    assert row["requests"] == expected["requests"]
    assert row["errors"] == expected["errors"]
    assert row["prompt_tokens"] == expected["prompt_tokens"]
    assert row["completion_tokens"] == expected["completion_tokens"]
    assert row["total_tokens"] == expected["prompt_tokens"] + expected["completion_tokens"]
    assert row["credits_micro"] == expected["credits_micro"]
    assert Decimal(row["credits"]) * 1_000_000 == expected["credits_micro"]
    assert row["avg_latency_ms"] == round(expected["latency"] / expected["requests"])
    assert row["error_rate"] == round(expected["errors"] / expected["requests"], 4)


def _check_stats(stats, calls):
    _check_group(stats["overview"], _expected(calls)["all"])
    for name, field, index in (
        ("by_model", "model", 0),
        ("by_provider", "provider", 1),
        ("by_task_type", "task_type", 2),
    ):
        expected = _expected(calls, index)
        got = {row[field]: row for row in stats[name]}
        assert set(got) == set(expected), name
        for key, exp in expected.items():
            _check_group(got[key], exp)


def test_every_group_adds_up_and_days_filter(user, other_user, make_usage):
    _make_calls(user, make_usage)
    _make_calls(other_user, make_usage, CALLS[:2])

    week = LLMMonitoringService().get_comprehensive_stats(user.pk, 7)
    in_week = [c for c in CALLS if c[8] < 7]
    _check_stats(week, in_week)
    # Hand-checked figures, so a wrong sum cannot hide behind the same wrong helper.
    assert week["overview"]["requests"] == 7
    assert week["overview"]["credits"] == "8.762500"
    assert week["overview"]["errors"] == 1
    assert {r["task_type"] for r in week["by_task_type"]} == {"analysis", "code_generation", "simple"}
    # Ranked by credits spent.
    assert [r["provider"] for r in week["by_provider"]] == ["openrouter", "openai", "anthropic"]

    month = LLMMonitoringService().get_comprehensive_stats(user.pk, 30)
    _check_stats(month, CALLS)
    assert month["overview"]["requests"] == 8

    today_only = LLMMonitoringService().get_comprehensive_stats(user.pk, 1)
    _check_stats(today_only, [c for c in CALLS if c[8] == 0])


def test_daily_series_covers_every_day(user, make_usage):
    _make_calls(user, make_usage)
    stats = LLMMonitoringService().get_comprehensive_stats(user.pk, 7)
    series = stats["daily"]
    assert len(series) == 7
    assert series[-1]["date"] == NOW.date().isoformat()
    by_date = {d["date"]: d for d in series}
    for days_ago in range(7):
        calls = [c for c in CALLS if c[8] == days_ago]
        day = (NOW - dt.timedelta(days=days_ago, minutes=1 if days_ago else 0)).date().isoformat()
        assert by_date[day]["requests"] == len(calls)
        assert by_date[day]["credits_micro"] == sum(c[5] for c in calls)


def test_a_user_never_sees_another_users_usage(user, other_user, make_usage):
    _make_calls(other_user, make_usage)
    stats = LLMMonitoringService().get_comprehensive_stats(user.pk, 30)
    assert stats["overview"]["requests"] == 0
    assert stats["by_model"] == [] and stats["by_provider"] == [] and stats["by_task_type"] == []
    assert all(d["requests"] == 0 for d in stats["daily"])


def test_rollups_give_the_same_stats_as_the_raw_rows(user, other_user, make_usage):
    _make_calls(user, make_usage)
    _make_calls(other_user, make_usage, CALLS[:3])
    raw = LLMMonitoringService().get_comprehensive_stats(user.pk, 30)

    result = daily_usage_rollup()
    # Every day up to yesterday is closed once the grace period is over.
    closed = RollupState.objects.get(name="daily_usage").closed_through
    if timezone.now() - timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) >= dt.timedelta(
        minutes=15
    ):
        assert closed == NOW.date() - dt.timedelta(days=1)
    assert result["closed_through"] == (closed.isoformat() if closed else None)
    # One row per (day, user, model, provider, task type) group.
    assert DailyUsage.objects.filter(user=user).count() == 7
    assert sum(DailyUsage.objects.filter(user=user).values_list("credits", flat=True)) == sum(
        c[5] for c in CALLS
    )

    rolled = LLMMonitoringService().get_comprehensive_stats(user.pk, 30)
    assert rolled == raw
    # A second run rebuilds nothing twice.
    daily_usage_rollup()
    assert DailyUsage.objects.filter(user=user).count() == 7
    assert LLMMonitoringService().get_comprehensive_stats(user.pk, 30) == raw


def test_closed_days_come_from_rollups_only(user, make_usage):
    """After a day is closed its usage rows are no longer read: a row deleted afterwards still counts."""
    from monitoring.models import UsageRecord

    _make_calls(user, make_usage)
    noon = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    daily_usage_rollup(now=noon if noon <= timezone.now() else timezone.now())
    UsageRecord.objects.filter(user=user, created_at__lt=NOW - dt.timedelta(days=11)).delete()
    stats = LLMMonitoringService().get_comprehensive_stats(user.pk, 30)
    assert stats["overview"]["requests"] == 8


def test_p95_latency_reads_the_histogram(user, make_usage):
    for latency in [200] * 19 + [9000]:
        make_usage(user, latency_ms=latency)
    overview = LLMMonitoringService().get_comprehensive_stats(user.pk, 1)["overview"]
    assert overview["p95_latency_ms"] == 250  # 19 of 20 calls fall in the <=250 ms bucket
    make_usage(user, latency_ms=9000)
    overview = LLMMonitoringService().get_comprehensive_stats(user.pk, 1)["overview"]
    assert overview["p95_latency_ms"] == 10000  # now 2 of 21 are slow: p95 falls in the <=10 s bucket
    assert overview["avg_latency_ms"] == round((19 * 200 + 2 * 9000) / 21)


@pytest.mark.parametrize("days", [0, -1, "abc", 1000])
def test_bad_days_is_a_400(user, days):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    response = client.get("/api/monitoring/usage", {"days": days})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"


def test_usage_api_is_the_callers_own(
    api_client, user, other_user, make_usage, django_assert_max_num_queries
):
    _make_calls(user, make_usage)
    _make_calls(other_user, make_usage, CALLS[:1])
    daily_usage_rollup()
    with django_assert_max_num_queries(6):
        response = api_client.get("/api/monitoring/usage", {"days": 30})
    assert response.status_code == 200
    body = response.json()
    _check_stats(body, CALLS)
    assert body["user_id"] == user.pk

    forbidden = api_client.get("/api/monitoring/usage", {"user_id": other_user.pk})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["type"]


def test_staff_may_read_another_users_usage(user, other_user, make_usage, django_user_model):
    from rest_framework.test import APIClient

    staff = django_user_model.objects.create_user(username="staff", password="pw-staff-123", is_staff=True)
    _make_calls(other_user, make_usage, CALLS[:2])
    client = APIClient()
    client.force_login(staff)
    body = client.get("/api/monitoring/usage", {"user_id": other_user.pk, "days": 7}).json()
    _check_stats(body, CALLS[:2])


def test_usage_api_needs_credentials(client):
    response = client.get("/api/monitoring/usage")
    assert response.status_code in (401, 403)
    assert "error" in response.json()
