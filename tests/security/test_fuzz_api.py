"""Schemathesis against our own `/api/schema/`: every operation, valid and invalid inputs, with a
valid API key of a user holding credits, the offline demo provider answering chat calls.

For every generated request: never a 5xx; every error is the JSON error shape; a refused request
moves no money (balance, holds and ledger exactly as before); and after any request the ledger
still balances with no hold left open. The budget is bounded (FUZZ_MAX_EXAMPLES per operation).
"""

import os
import re

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.gateway.conftest import (
    OPENROUTER_HOST,
    assert_anthropic_error,
    claude_message,
    grant,
    json_response,
    openrouter_completion,
)

FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "100"))
FIGURES = {"requests": 0, "errors_4xx": 0, "ok_2xx": 0, "server_errors": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    """What the run covered, for docs/RELIABILITY.md (shown with `pytest -s`)."""
    yield
    if FIGURES["requests"]:
        print(f"\nfuzz figures: {FIGURES}")


def _without_connection_cleanup(call):
    """Run an in-process request; the handler must not close the test's own connection (Django's test
    client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        return call()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


SCHEMA = _without_connection_cleanup(
    lambda: schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def settings_for_fuzz(settings):
    # Signature checks run (and fail) on the webhook; Stripe's API itself is not configured (400).
    settings.STRIPE_WEBHOOK_SECRET = "whsec_fuzzing_only_not_a_real_secret"
    settings.STRIPE_SECRET_KEY = ""
    return settings


@pytest.fixture
def fuzz_caller(user, api_key):
    grant(user, 1000)
    return {"user": user, "headers": {"Authorization": f"Bearer {api_key}"}}


def _money(user) -> tuple:
    from billing.models import CreditHold, LedgerEntry
    from billing.selectors import balance_get

    return (
        balance_get(user=user),
        LedgerEntry.objects.count(),
        CreditHold.objects.filter(state=CreditHold.State.HELD).count(),
    )


def test_every_operation_is_fuzzed():
    """The schema lists every API route we serve, so a new endpoint is fuzzed without editing this file."""
    from django.urls import get_resolver

    # `<path:model_id>` in a route is `{model_id}` in the schema.
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", "/" + route) for route in _routes(get_resolver().url_patterns)
    }
    api_routes = {r for r in routes if r.startswith(("/api/", "/v1/"))}
    documented = {op.path for op in OPERATIONS} | {"/api/schema/", "/api/docs/"}
    assert api_routes - documented == set()
    assert len(OPERATIONS) >= 12


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


CHAT = {
    "POST /v1/chat/completions",
    "POST /api/llm/chat",
    "POST /v1/responses",
    "POST /v1/embeddings",
    "POST /v1/messages",
    "POST /v1/messages/count_tokens",
}
RUNS = [(op, "demo") for op in OPERATIONS] + [(op, "paid") for op in OPERATIONS if op.label in CHAT]


def _paid_answer(req, body):
    if req.url.path.endswith("/embeddings"):
        count = len(body.get("input") or [])
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(count)]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return json_response(
            200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        )
    if req.url.path.endswith("/messages"):
        # OpenRouter's Anthropic-compatible endpoint (Claude models on /v1/messages).
        return json_response(200, claude_message(model=body.get("model") or "anthropic/claude-sonnet-4.6"))
    return json_response(200, openrouter_completion())


@pytest.mark.parametrize("operation, upstream", RUNS, ids=[f"{op.label} [{up}]" for op, up in RUNS])
def test_api_never_fails_on_any_input_and_moves_no_money_when_it_refuses(
    request, operation, upstream, fuzz_caller, settings_for_fuzz
):
    from billing.services import ledger_reconcile

    if upstream == "demo":
        request.getfixturevalue("demo_only")
    else:
        # Paid models through a mocked OpenRouter: valid calls are charged, refused ones must not be.
        network = request.getfixturevalue("providers")
        network.on(OPENROUTER_HOST, _paid_answer)

    user = fuzz_caller["user"]
    # Valid and invalid requests alike (schemathesis' positive and negative generation).
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(
        max_examples=FUZZ_MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        before = _money(user)
        response = _without_connection_cleanup(lambda: case.call(headers=fuzz_caller["headers"]))
        FIGURES["requests"] += 1
        status = response.status_code
        described = (
            f"{case.method} {case.formatted_path} {case.body!r:.300} -> {status} {response.text[:300]}"
        )
        if status >= 500:
            FIGURES["server_errors"] += 1
        assert status < 500, described
        if status >= 400:
            FIGURES["errors_4xx"] += 1
            error = response.json()["error"]
            if case.formatted_path.startswith("/v1/messages"):
                # Anthropic's shape, so its SDKs raise their own classes.
                assert_anthropic_error(response.json(), described)
            else:
                assert {"message", "type", "code"} <= error.keys(), described
                assert all(isinstance(error[k], str) and error[k] for k in ("message", "type", "code")), (
                    described
                )
            assert _money(user) == before, described
        else:
            FIGURES["ok_2xx"] += 1
        assert ledger_reconcile() == [], described
        assert _money(user)[2] == 0, f"hold left open: {described}"

    fuzz()
