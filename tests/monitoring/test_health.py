"""Provider health: rates and latency over the window, down/up transitions, probes apart from traffic."""

import pytest


def _feed(monitor, provider, model, outcomes):
    for ok, latency in outcomes:
        monitor.record_attempt(
            provider=provider,
            model=model,
            ok=ok,
            latency_ms=latency,
            output_tokens=50 if ok else 0,
            error_class="" if ok else "UpstreamUnavailable",
        )


def test_success_rate_latency_and_throughput_after_a_mix(monitor):
    # Interleave failures so no run of consecutive failures marks the provider down.
    outcomes = [
        (True, 100),
        (True, 200),
        (False, 5000),
        (True, 300),
        (True, 400),
        (False, 9000),
        (True, 500),
        (True, 600),
        (True, 700),
        (True, 800),
    ]
    _feed(monitor, "openai", "openai/gpt-4o", outcomes)

    measured = monitor.measured("openai", "openai/gpt-4o")
    assert measured["success_rate"] == pytest.approx(0.8)
    # Latency of successes only: nearest-rank p50 of 100..800 is 400.
    assert measured["latency_p50_ms"] == 400
    # 8 successes x 50 tokens over 3.6 s of successful calls.
    assert measured["throughput_tps"] == pytest.approx(400 / 3.6)

    rows = {(r["provider"], r["model"]): r for r in monitor.get_all_provider_health()}
    assert set(rows) == {("openai", None), ("openai", "openai/gpt-4o")}
    model_row = rows[("openai", "openai/gpt-4o")]
    assert model_row["requests"] == 10 and model_row["failures"] == 2
    assert model_row["latency_p95_ms"] == 800
    assert model_row["last_error"] == "UpstreamUnavailable"
    assert model_row["healthy"] is False  # 0.8 < 0.9 over 10 samples
    assert rows[("openai", None)]["requests"] == 10

    assert monitor.is_provider_healthy("openai", "openai/gpt-4o") is False
    assert monitor.is_provider_healthy("openai", "openai/gpt-4o", min_success_rate=0.75) is True


def test_unknown_provider_is_healthy_and_unmeasured(monitor):
    assert monitor.is_provider_healthy("groq") is True
    assert monitor.measured("groq") == {"latency_p50_ms": None, "throughput_tps": None, "success_rate": None}


def test_too_few_samples_are_not_judged_on_rate(monitor):
    _feed(monitor, "groq", "meta-llama/llama-3.1-70b-instruct", [(True, 100), (False, 100)])
    assert monitor.measured("groq")["success_rate"] == 0.5
    assert monitor.is_provider_healthy("groq") is True


def test_down_after_n_consecutive_failures_and_up_after_m_probe_successes(monitor):
    _feed(monitor, "anthropic", "anthropic/claude-3.5-sonnet", [(True, 300)] * 20)
    assert monitor.is_provider_healthy("anthropic") is True

    _feed(monitor, "anthropic", "anthropic/claude-3.5-sonnet", [(False, 100)] * 2)
    assert monitor.is_provider_healthy("anthropic") is True  # 2 < HEALTH_DOWN_AFTER, rate 20/22
    _feed(monitor, "anthropic", "anthropic/claude-3.5-sonnet", [(False, 100)])
    assert monitor.is_provider_healthy("anthropic") is False
    assert monitor.is_provider_healthy("anthropic", "anthropic/claude-3.5-sonnet") is False

    # One probe success is not enough; the second brings it back.
    monitor.record_attempt(provider="anthropic", model="", ok=True, latency_ms=50, probe=True)
    assert monitor.is_provider_healthy("anthropic") is False
    monitor.record_attempt(provider="anthropic", model="", ok=True, latency_ms=60, probe=True)
    assert monitor.is_provider_healthy("anthropic") is True

    # Probes are kept apart: the traffic rate still counts 20 successes out of 23.
    assert monitor.measured("anthropic")["success_rate"] == pytest.approx(20 / 23)
    row = next(
        r for r in monitor.get_all_provider_health() if r["provider"] == "anthropic" and r["model"] is None
    )
    assert row["requests"] == 23
    assert row["probe_ok"] is True and row["probe_latency_ms"] == 60
    assert row["last_probe_at"] == monitor.now()


def test_failed_probes_mark_a_provider_down(monitor):
    for _ in range(3):
        monitor.record_attempt(
            provider="zai", model="", ok=False, latency_ms=5000, error_class="UpstreamTimeout", probe=True
        )
    assert monitor.is_provider_healthy("zai") is False
    row = next(r for r in monitor.get_all_provider_health() if r["provider"] == "zai")
    assert row["down"] is True and row["last_error"] == "UpstreamTimeout" and row["requests"] == 0


def test_old_samples_leave_the_window(monitor, clock):
    _feed(
        monitor,
        "openai",
        "openai/gpt-4o",
        [(True, 1000), (False, 100), (True, 1000), (False, 100), (True, 1000), (False, 100)],
    )
    assert monitor.measured("openai")["success_rate"] == 0.5
    clock.advance(601)  # HEALTH_WINDOW_SECONDS is 600 in these tests
    _feed(monitor, "openai", "openai/gpt-4o", [(True, 200)] * 5)
    measured = monitor.measured("openai")
    assert measured["success_rate"] == 1.0
    assert measured["latency_p50_ms"] == 200


def test_window_keeps_at_most_window_size_samples(monitor):
    _feed(monitor, "openai", "openai/gpt-4o", [(False, 100), (True, 100)] * 10 + [(True, 100)] * 60)
    row = next(r for r in monitor.get_all_provider_health() if r["model"] == "openai/gpt-4o")
    assert row["requests"] == 50  # HEALTH_WINDOW_SIZE
    assert row["success_rate"] == 1.0


@pytest.mark.redis
def test_redis_store_is_shared_between_monitors(settings, clock):
    from monitoring.health import ProviderHealthMonitor, _RedisStore

    settings.HEALTH_KEY_PREFIX = "test-health-shared"
    first = ProviderHealthMonitor(store=_RedisStore("test-health-shared", settings.REDIS_URL), now=clock)
    second = ProviderHealthMonitor(store=_RedisStore("test-health-shared", settings.REDIS_URL), now=clock)
    try:
        for _ in range(3):
            first.record_attempt(
                provider="groq", model="m", ok=False, latency_ms=10, error_class="UpstreamTimeout"
            )
        assert second.is_provider_healthy("groq") is False
        assert second.measured("groq", "m")["success_rate"] == 0.0
    finally:
        first.clear()


@pytest.mark.redis
def test_samples_are_written_after_redis_lost_the_script(settings, clock):
    """The sample script is called by its hash; a Redis that lost it (restart, SCRIPT FLUSH) gets it
    loaded again and the batch written, not dropped."""
    from monitoring.health import ProviderHealthMonitor, _RedisStore

    settings.HEALTH_KEY_PREFIX = "test-health-flush"
    store = _RedisStore("test-health-flush", settings.REDIS_URL)
    monitor = ProviderHealthMonitor(store=store, now=clock)
    failure = {
        "provider": "groq",
        "model": "m",
        "ok": False,
        "latency_ms": 10,
        "error_class": "UpstreamTimeout",
    }
    try:
        monitor.record_attempt(**failure)
        store.client.script_flush()
        monitor.record_attempts([failure, failure])
        samples, _ = monitor._read([("groq", "m")])
        assert len(samples[monitor._traffic_key("groq", "m")]) == 3
        assert monitor.is_provider_healthy("groq") is False
    finally:
        monitor.clear()


def test_a_redis_outage_never_reaches_the_caller(settings, clock, caplog):
    from monitoring.health import ProviderHealthMonitor, _RedisStore

    # Nothing listens on port 1: every call fails at connect.
    store = _RedisStore("test-health-down", "redis://127.0.0.1:1/0")
    monitor = ProviderHealthMonitor(store=store, now=clock)
    monitor.record_attempt(provider="openai", model="openai/gpt-4o", ok=False, latency_ms=10)
    assert monitor.is_provider_healthy("openai", "openai/gpt-4o") is True
    assert monitor.measured("openai")["success_rate"] is None
    assert monitor.get_all_provider_health() == []
    assert "provider health write failed" in caplog.text


def test_default_store_follows_redis_url(settings):
    from monitoring.health import ProviderHealthMonitor, _CacheStore, _RedisStore

    settings.REDIS_URL = ""
    assert isinstance(ProviderHealthMonitor().store, _CacheStore)
    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    assert isinstance(ProviderHealthMonitor().store, _RedisStore)
