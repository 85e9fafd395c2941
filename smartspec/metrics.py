"""Prometheus metrics: every definition, the one-line recorders the pipeline calls, and `GET /metrics`.

The apps call the recorders below at the points where an outcome is already known (the call's close,
the hold, the settle, a ledger entry, the deferred record queue); each is a counter or gauge update,
microseconds, and never raises into the caller. What is global rather than per process (the circuit
breakers' states, kept in Redis) is read when Prometheus scrapes, not on the request path.

Several worker processes: with `PROMETHEUS_MULTIPROC_DIR` set (before the server forks its workers,
and emptied at each start) every process writes its figures there and a scrape of any worker sums
them (prometheus-client's multiprocess mode). Without it each process keeps its own figures and a
scrape shows only the worker that answered it: fine for one worker (`make run`), wrong for several.

Labels stay bounded: the endpoint is one of the pipeline's paths, models are catalog ids, providers
the configured ones, statuses HTTP codes and outcomes error class names.
"""

from __future__ import annotations

import contextvars
import glob
import hmac
import ipaddress
import logging
import os
import re
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from . import errors

logger = logging.getLogger(__name__)

# The paths that run the billed pipeline: the `endpoint` label of the call metrics.
PIPELINE_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/api/llm/chat"}
)
# A call made in-process (the Python API, a management command), not through HTTP.
INTERNAL = "internal"
# nginx's code for a client that hung up before the answer: counted as a request, not as an error.
CLIENT_CLOSED = "499"

_CALL = ("endpoint", "model", "provider", "status")
REQUESTS = Counter(
    "smartspec_requests_total",
    "Calls to the billed pipeline by endpoint, answering model, provider and HTTP status "
    "(a stream broken after its start counts with its error's status; 499: the client hung up).",
    _CALL,
)
ERRORS = Counter(
    "smartspec_errors_total",
    "The calls of smartspec_requests_total that failed (status 400 and up, 499 excluded).",
    _CALL,
)
REQUEST_SECONDS = Histogram(
    "smartspec_request_duration_seconds",
    "A call from its first upstream attempt to its close (a stream: to its last event).",
    ("endpoint", "provider"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
TTFT_SECONDS = Histogram(
    "smartspec_time_to_first_token_seconds",
    "Streams: from the first upstream attempt to the first token relayed.",
    ("endpoint", "provider"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 60),
)
ATTEMPTS = Counter(
    "smartspec_upstream_attempts_total",
    "Upstream attempts by provider and outcome: ok, the error class of a failure, or skipped "
    "(ruled out before any request: circuit open, price cap, privacy).",
    ("provider", "outcome"),
)
RETRIES = Counter(
    "smartspec_upstream_retries_total",
    "Upstream attempts made after an earlier attempt of the same call failed, by the provider retried.",
    ("provider",),
)
FALLBACKS = Counter(
    "smartspec_fallbacks_total",
    "Calls answered by another model than the one routing chose first.",
    ("from_model", "to_model"),
)
HOLDS_IN_FLIGHT = Gauge(
    "smartspec_holds_in_flight",
    "Credit holds of calls in progress (placed, not yet settled or released).",
    multiprocess_mode="livesum",
)
CREDITS_HELD = Gauge(
    "smartspec_credits_held_micro",
    "Micro-credits (1 credit = 1,000,000) held by the calls in progress.",
    multiprocess_mode="livesum",
)
SETTLES = Counter(
    "smartspec_settles_total",
    "Holds resolved after a call: charged, released (nothing to charge), journaled (the database was "
    "down; replayed later), replayed (a journaled settle taken out of the journal, once, by the replay "
    "that resolved it) or failed (an error left the hold open until it expires).",
    ("result",),
)
LEDGER_ENTRIES = Counter(
    "smartspec_ledger_entries_total",
    "Ledger entries committed, by kind.",
    ("kind",),
)
STRIPE_EVENTS = Counter(
    "smartspec_stripe_events_total",
    "Stripe webhook deliveries by event type and outcome: processed, pending (waits for its payment), "
    "ignored, duplicate, failed (Stripe retries it) or refused (not verified: a bad signature, a body that "
    "is not an event, or no webhook secret set; type unverified).",
    ("type", "status"),
)
RECORD_QUEUE_DEPTH = Gauge(
    "smartspec_record_queue_depth",
    "Usage rows waiting for the deferred writer (GATEWAY_DEFER_RECORDS).",
    multiprocess_mode="livesum",
)
RECORD_FAILURES = Counter(
    "smartspec_usage_record_failures_total",
    "Usage rows that could not be written (the charge is in the ledger; monitoring misses the row).",
)


# --- The call of the current request ----------------------------------------------------------------


class _Call:
    """What the request knows of its call: set by the request-id middleware, filled by the pipeline."""

    __slots__ = ("endpoint", "model", "recorded")

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.model = ""
        self.recorded = False


_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("smartspec_metrics_call", default=None)


def request_begin(path: str) -> None:
    """Middleware: a request starts (a pipeline path gets a holder for its call's labels)."""
    _call.set(_Call(path) if path in PIPELINE_PATHS else None)


def request_end(status_code: int) -> None:
    """Middleware: a pipeline request refused before its call was closed (400, 401, 402, 429, 503...)."""
    call = _call.get()
    if call is None or call.recorded or status_code < 400:
        return
    try:
        _count(call.endpoint, call.model, "", str(status_code))
    except Exception:  # metrics never fail a request
        logger.warning("recording a metric failed", exc_info=True)


def call_model(model: str) -> None:
    """The pipeline routed the call: its first model labels the request if it is refused from here on."""
    call = _call.get()
    if call is not None:
        call.model = model


def _count(endpoint: str, model: str, provider: str, status: str) -> None:
    REQUESTS.labels(endpoint, model, provider, status).inc()
    if status != CLIENT_CLOSED and int(status) >= 400:
        ERRORS.labels(endpoint, model, provider, status).inc()


def _status_by_error_class() -> dict[str, str]:
    found, todo = {}, [errors.APIError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = str(cls.status)
        todo.extend(cls.__subclasses__())
    return found


_STATUS: dict[str, str] = {}


def _status(status: str, error_class: str) -> str:
    if status == "ok":
        return "200"
    if status == "cancelled":
        return CLIENT_CLOSED
    if not _STATUS:
        _STATUS.update(_status_by_error_class())
    return _STATUS.get(error_class, "500")


# --- The pipeline's hooks ---------------------------------------------------------------------------


def hold_placed(amount: int) -> None:
    """A call's hold was placed (micro-credits)."""
    HOLDS_IN_FLIGHT.inc()
    CREDITS_HELD.inc(amount)


def hold_abandoned(amount: int) -> None:
    """A call's hold was given back unused: its caller went away before the call started."""
    HOLDS_IN_FLIGHT.dec()
    CREDITS_HELD.dec(amount)


def call_observe(*, usage: dict[str, Any], first_model: str, journaled: bool) -> None:
    """A call closed: its usage row (`gateway.service._call_record`) says everything counted here."""
    try:
        call = _call.get()
        endpoint = INTERNAL
        if call is not None:
            endpoint, call.recorded = call.endpoint, True
        model, provider = usage["model"], usage["provider"]
        _count(endpoint, model, provider, _status(usage["status"], usage["error_class"]))
        REQUEST_SECONDS.labels(endpoint, provider).observe(usage["latency_ms"] / 1000)
        if usage["ttft_ms"] is not None:
            TTFT_SECONDS.labels(endpoint, provider).observe(usage["ttft_ms"] / 1000)
        tried = 0
        for attempt in usage["attempts"]:
            if attempt["error_class"] == "OpenRouterFallback":
                # Bookkeeping: OpenRouter's own fallback answered in the same request (the next step).
                continue
            if attempt["status"] == "skipped":
                ATTEMPTS.labels(attempt["provider"], "skipped").inc()
                continue
            ATTEMPTS.labels(attempt["provider"], attempt["error_class"] or "ok").inc()
            if tried:
                RETRIES.labels(attempt["provider"]).inc()
            tried += 1
        if usage["status"] == "ok" and model != first_model:
            FALLBACKS.labels(first_model, model).inc()
        if usage["hold"] > 0:
            HOLDS_IN_FLIGHT.dec()
            CREDITS_HELD.dec(usage["hold"])
            SETTLES.labels("journaled" if journaled else "charged" if usage["credits"] else "released").inc()
    except Exception:  # metrics never fail a call
        logger.warning("recording a call's metrics failed", exc_info=True)


def settle_failed() -> None:
    """A settle raised something other than an outage: the hold stays open (it expires later)."""
    SETTLES.labels("failed").inc()


def settle_replayed() -> None:
    """A journaled settle was replayed and taken out of the journal (`gateway.settle_journal`); the
    call was counted as journaled when it was answered."""
    SETTLES.labels("replayed").inc()


def stripe_event(event_type: str, status: str) -> None:
    """One Stripe webhook delivery and what became of it (`event_type` "" when it was not verified)."""
    STRIPE_EVENTS.labels(event_type or "unverified", status).inc()


def ledger_entry(kind: str) -> None:
    """A ledger entry was written: counted once its transaction commits (at once outside one)."""
    transaction.on_commit(partial(LEDGER_ENTRIES.labels(kind).inc))


def record_queue_depth(depth: int) -> None:
    RECORD_QUEUE_DEPTH.set(depth)


def record_failed() -> None:
    RECORD_FAILURES.inc()


# --- Scrape -----------------------------------------------------------------------------------------


class ProviderStatesCollector:
    """The circuit breaker of each configured provider, read from the shared health store at scrape
    time (one read; the same figure from every worker, so never summed)."""

    STATES = ("closed", "half_open", "open")

    def collect(self):
        from gateway.providers import circuit_providers
        from monitoring.services import ProviderHealthMonitor

        try:
            providers = circuit_providers()
            states = ProviderHealthMonitor().circuit_states(providers, claim_trials=False)
        except Exception as exc:  # the store is down: the scrape still answers the other figures
            logger.warning("reading circuit states for /metrics failed: %s", type(exc).__name__)
            return
        family = GaugeMetricFamily(
            "smartspec_circuit_state",
            "1 for the state each provider's circuit breaker is in (closed, half_open, open).",
            labels=("provider", "state"),
        )
        for provider in providers:
            for state in self.STATES:
                family.add_metric((provider, state), 1 if states.get(provider) == state else 0)
        yield family


_provider_states = ProviderStatesCollector()
REGISTRY.register(_provider_states)
_PID_FILE = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def _dead_workers_forget(path: str) -> None:
    """Drop the live gauges of worker processes that died without saying so (killed, crashed): their
    holds are no longer in flight here. Their counters stay, as prometheus-client keeps them."""
    pids = {
        int(m.group(1))
        for f in glob.glob(os.path.join(path, "gauge_live*_*.db"))
        if (m := _PID_FILE.search(f))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, another user's
            pass


def process_exit() -> None:
    """A worker stops cleanly: its live gauges leave the sums."""
    path = multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)


def metrics_text() -> bytes:
    path = multiprocess_dir()
    if not path:
        return generate_latest(REGISTRY)
    _dead_workers_forget(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    registry.register(_provider_states)
    return generate_latest(registry)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def scrape_refusal(request) -> errors.APIError | None:
    """Why this request may not read /metrics, or None. With `METRICS_TOKEN` set: its bearer token.
    Without it: nobody, except a loopback client while DEBUG is on (`make run`)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return errors.AuthenticationError(
                "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.", code="invalid_metrics_token"
            )
        return None
    if settings.DEBUG and _loopback(request.META.get("REMOTE_ADDR", "")):
        return None
    return errors.Forbidden("Set METRICS_TOKEN to scrape /metrics.", code="metrics_token_not_set")


def metrics_response(request) -> HttpResponse:
    refusal = scrape_refusal(request)
    if refusal is not None:
        return errors.error_response(refusal)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
