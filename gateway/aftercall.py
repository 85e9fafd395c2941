"""What a billed call records after its answer is sent: its usage row and its providers' health.

The money is settled before the answer (the hold, the balance and the ledger entry are committed by
`hold_settle`); these records are monitoring data, so the answer does not wait for them. They are
queued and written by one drain at a time on the DB-step threads (`gateway.db`), which waits
`GATEWAY_RECORDS_DELAY_MS` before each batch: one INSERT for every row queued meanwhile, so many calls
share one statement and one commit, and the write does not compete with the answer being sent.

Nothing is dropped silently: a failed batch is retried row by row and every row that still fails is
logged with its request id. At a clean shutdown the interpreter waits for the drain. A worker killed
between an answer and the drain (at most one delay plus one batch's write) loses those rows, and only
monitoring notices: the call is missing
from the usage dashboards and rollups and its sample from provider health, while the charge stays in
the ledger (balance == sum of entries still holds, the customer's transactions list shows it). A
key's spend caps count in the cache and are seeded from usage rows only after the cache is lost, so
a lost row can then let that key spend up to its amount more in that period.

`GATEWAY_DEFER_RECORDS=false` writes them before the answer instead (the test suite's default).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from smartspec import metrics

from .db import connection_release, db_executor, db_step

logger = logging.getLogger(__name__)

MAX_BATCH = 500
# Upstream errors that mean the provider is fine: the request (or the model it named) was the problem.
ANSWERED_ERRORS = ("UpstreamBadRequest", "UpstreamModelGone")
# OpenRouter answered with a later model of its `models` fallback: the requested model's step says so,
# but it is OpenRouter's routing, not a failure of ours to count against the provider.
OPENROUTER_FALLBACK = "OpenRouterFallback"


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One attempt's outcome, as provider health records it."""

    provider: str
    model: str
    ok: bool
    latency_ms: int
    output_tokens: int
    error_class: str
    caller: str = ""  # whose call it was: one caller's failures alone never open the circuit


@dataclass(frozen=True, slots=True)
class CallRecord:
    usage: dict[str, Any]  # the keyword arguments of monitoring.services.usage_record_create
    health: tuple[HealthSample, ...]


_queue: deque[CallRecord] = deque()
_lock = threading.Lock()
_drain: Future | None = None


def call_record(*, record: CallRecord) -> None:
    """Record one call: now, or queued for the drain when records are deferred."""
    global _drain
    if not settings.GATEWAY_DEFER_RECORDS:
        _records_write([record])
        return
    with _lock:
        _queue.append(record)
        metrics.record_queue_depth(len(_queue))
        if _drain is not None:
            return
        try:
            _drain = db_executor().submit(db_step(_records_drain, pooled_thread=True))
        except RuntimeError:  # the interpreter is shutting down: no new threads, write it here
            _drain = None
            pending = _queue.popleft()
        else:
            return
    _records_write([pending])


def _records_drain() -> None:
    global _drain
    delay = settings.GATEWAY_RECORDS_DELAY_MS / 1000
    while True:
        # Gather what the next calls queue meanwhile (one INSERT for all of them) and stay out of the
        # way of the answer that is being sent right now.
        if delay > 0:
            time.sleep(delay)
        with _lock:
            batch = [_queue.popleft() for _ in range(min(MAX_BATCH, len(_queue)))]
            metrics.record_queue_depth(len(_queue))
            if not batch:
                _drain = None
                return
        try:
            _records_write(batch)
        except Exception:  # keep draining: a stuck drain would hold every later record back
            logger.exception("recording %s calls failed", len(batch))
        finally:
            connection_release(pooled_thread=True)  # not held across the next wait


def _records_write(batch: list[CallRecord]) -> None:
    from monitoring.services import usage_record_create, usage_records_create

    try:
        usage_records_create(records=[record.usage for record in batch])
    except Exception:
        logger.warning("writing %s usage rows at once failed; writing them one by one", len(batch))
        for record in batch:
            try:
                usage_record_create(**record.usage)
            except Exception:  # the charge is in the ledger already; monitoring misses this row
                metrics.record_failed()
                logger.exception("recording usage failed for request %s", record.usage.get("request_id"))
    health_samples_record(sample for record in batch for sample in record.health)


def health_samples(
    *, attempts: Iterable[Any], output_tokens: int = 0, caller: str = ""
) -> tuple[HealthSample, ...]:
    """Each real attempt's outcome (skipped ones never reached a provider), as a snapshot."""
    return tuple(
        HealthSample(
            provider=a.provider,
            model=a.model,
            # An upstream that rejected the request itself, or said it has no such model, answered
            # correctly: callers sending bad requests (or a retired model) must not trip the breaker.
            ok=a.status == "ok" or a.error_class in ANSWERED_ERRORS,
            latency_ms=a.latency_ms,
            output_tokens=output_tokens if a.status == "ok" else 0,
            error_class=a.error_class,
            caller=caller,
        )
        for a in attempts
        if a.status in ("ok", "error") and a.error_class != OPENROUTER_FALLBACK
    )


def health_samples_record(samples: Iterable[HealthSample]) -> None:
    """Feed samples to provider health; never fails the caller."""
    from monitoring.services import ProviderHealthMonitor

    samples = tuple(samples)
    try:
        ProviderHealthMonitor().record_attempts(
            {
                "provider": sample.provider,
                "model": sample.model,
                "ok": sample.ok,
                "latency_ms": sample.latency_ms,
                "output_tokens": sample.output_tokens,
                "error_class": sample.error_class,
                "caller": sample.caller,
            }
            for sample in samples
        )
    except Exception:  # health is advice for routing, not part of the answer
        logger.exception("recording provider health failed")
    models_gone_record(samples)


def models_gone_record(samples: Iterable[HealthSample]) -> None:
    """Flag for staff review every model an upstream said it does not have; never fails the caller."""
    from .catalog import catalog_review_flag

    gone: dict[str, list[str]] = {}
    for sample in samples:
        if sample.error_class == "UpstreamModelGone":
            gone.setdefault(sample.model, []).append(sample.provider)
    try:
        for model, providers in gone.items():
            catalog_review_flag(
                model_ids=[model],
                note=f"{', '.join(dict.fromkeys(providers))} answered that it has no such model",
            )
    except Exception:
        logger.exception("flagging retired models for review failed")


def call_records_flush(*, timeout: float = 10.0) -> bool:
    """Wait until every queued record is written (tests, shutdown hooks); False on timeout."""
    with _lock:
        drain = _drain
    if drain is None:
        return True
    done, _ = wait([drain], timeout=timeout)
    if not done:
        return False
    # A record queued after the drain emptied the queue started a new drain.
    return call_records_flush(timeout=timeout)
