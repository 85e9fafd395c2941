"""Cheap provider probes: one list-models request per configured provider, never a billed
generation (a "ping" on a reasoning model can cost real money). Results feed the health
monitor as probe samples, kept apart from real-traffic rates.

The same list says which models a direct provider still serves: each probe returns the ids it
listed (`models`, None when the list was cut short by paging), and `providers_probe_all` flags for
staff review every catalog model whose direct id that provider no longer lists."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import httpx

from gateway.providers.base import WIRE_ANTHROPIC, WIRE_DEMO, WIRE_GEMINI, WIRE_OPENAI_COMPAT, ProviderConfig

from .health import ProviderHealthMonitor

logger = logging.getLogger(__name__)


def _models_request(config: ProviderConfig) -> tuple[str, dict[str, str], dict[str, str], str]:
    """URL, headers, query params and the JSON field holding the model list, per wire format."""
    base = config.base_url.rstrip("/")
    headers = dict(config.headers)
    # One page as large as each API allows: the ids are checked against the catalog.
    if config.wire == WIRE_ANTHROPIC:
        headers.update({"x-api-key": config.api_key, "anthropic-version": "2023-06-01"})
        return f"{base}/v1/models", headers, {"limit": "1000"}, "data"
    if config.wire == WIRE_GEMINI:
        headers["x-goog-api-key"] = config.api_key
        return f"{base}/models", headers, {"pageSize": "1000"}, "models"
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    return f"{base}/models", headers, {}, "data"


def _listed_ids(body: dict, field: str, wire: str) -> list[str] | None:
    """The model ids of a list-models answer; None when the list has more pages (nothing can be
    concluded about a model that is absent from the first one)."""
    if body.get("has_more") or body.get("nextPageToken"):
        return None
    ids = []
    for item in body.get(field) or []:
        if not isinstance(item, dict):
            continue
        name = item.get("name") if wire == WIRE_GEMINI else item.get("id")
        if isinstance(name, str):
            ids.append(name.removeprefix("models/"))
    return ids


def _error_class(status: int) -> str:
    if status == 429:
        return "UpstreamRateLimited"
    if status in (401, 403):
        return "AuthenticationError"
    if status >= 500:
        return "UpstreamUnavailable"
    return "UpstreamBadRequest"


def provider_probe(*, config: ProviderConfig, client: httpx.Client, monitor: ProviderHealthMonitor) -> dict:
    """Probe one provider and record the outcome; returns {provider, ok, latency_ms, error_class}."""
    url, headers, params, field = _models_request(config)
    started = time.monotonic()
    error_class = ""
    listed = None
    try:
        response = client.get(
            url,
            headers=headers,
            params=params,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        )
        if response.status_code != 200:
            error_class = _error_class(response.status_code)
        elif not isinstance(response.json().get(field), list):
            error_class = "UpstreamBadResponse"
        else:
            listed = _listed_ids(response.json(), field, config.wire)
    except httpx.TimeoutException:
        error_class = "UpstreamTimeout"
    except httpx.HTTPError:
        error_class = "UpstreamUnavailable"
    except ValueError:  # a body that is not JSON
        error_class = "UpstreamBadResponse"
    latency_ms = int((time.monotonic() - started) * 1000)
    ok = not error_class
    monitor.record_attempt(
        provider=config.name, model="", ok=ok, latency_ms=latency_ms, error_class=error_class, probe=True
    )
    if not ok:
        # The provider's name and our class only: never the URL (Gemini keys can sit in it) or the body.
        logger.warning("probe of %s failed: %s", config.name, error_class)
    return {
        "provider": config.name,
        "ok": ok,
        "latency_ms": latency_ms,
        "error_class": error_class,
        "models": listed,
    }


def providers_probe(
    *,
    configs: Iterable[ProviderConfig],
    transport: httpx.BaseTransport | None = None,
    monitor: ProviderHealthMonitor | None = None,
) -> list[dict]:
    """Probe every networked provider in `configs` (the offline demo provider needs none)."""
    monitor = monitor or ProviderHealthMonitor()
    results = []
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        for config in configs:
            if config.wire == WIRE_DEMO:
                continue
            if config.wire not in (WIRE_OPENAI_COMPAT, WIRE_ANTHROPIC, WIRE_GEMINI):
                logger.warning("no probe for wire format %s of %s", config.wire, config.name)
                continue
            results.append(provider_probe(config=config, client=client, monitor=monitor))
    return results
