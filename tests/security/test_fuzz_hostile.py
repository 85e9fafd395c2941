"""Hypothesis with the hostile classes schemathesis never generated (issue 11): deep nesting, lone
surrogates and NULs, huge / NaN / 65-bit numbers, lenient numbers, and wrong-typed message parts,
spliced as raw JSON into otherwise valid bodies. Sent through the live ASGI app on every chat route
(OpenRouter, Anthropic, Gemini) of both chat endpoints, and to the webhook with valid signatures.

For every request: never a 5xx; a 4xx is the JSON error shape and moves no money (balance, ledger,
holds, usage rows); after any request the ledger balances with no hold open. Bounded: EXAMPLES per
test (FUZZ_HOSTILE_EXAMPLES), a few hundred requests in all. Figures: `pytest -s` prints them, and
docs/RELIABILITY.md records a run.
"""

from __future__ import annotations

import json
import os
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.billing import stripe_shapes
from tests.gateway.conftest import (
    ANTHROPIC_HOST,
    GEMINI_HOST,
    OPENROUTER_HOST,
    anthropic_message,
    grant,
    json_response,
    openrouter_completion,
)
from tests.gateway.test_param_fidelity import GEMINI_ANSWER

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_HOSTILE_EXAMPLES", "60"))
FIGURES = {"requests": 0, "errors_4xx": 0, "ok_2xx": 0, "server_errors": 0}
HOLE = "__HOSTILE__"

ROUTES = {
    "openrouter": {"model": "openai/gpt-4o"},
    "anthropic": {"model": "anthropic/claude-sonnet-4.6", "use_openrouter": False},
    "gemini": {"model": "google/gemini-3.1-flash-lite", "use_openrouter": False},
}

# Raw JSON fragments, each one of the classes a review found.
deep = st.integers(min_value=65, max_value=4000).map(lambda d: "[" * d + "]" * d)
deep_objects = st.integers(min_value=65, max_value=2000).map(lambda d: '{"a":' * d + "1" + "}" * d)
bad_text = st.sampled_from(
    ['"\\ud800"', '"\\udfff"', '"a\\ud83d"', '"\\u0000"', '"x\\u0000y"', '["\\udc00"]', '{"\\ud800": 1}']
)
bad_numbers = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e999999999",
            '"1e999999999"',
            '"NaN"',
            "1" * 400,
        ]
    ),
    st.integers(min_value=2**64, max_value=2**90).map(str),
    st.integers(min_value=-(2**90), max_value=-(2**63) - 1).map(str),
)
lenient_numbers = st.sampled_from(['"١٢"', '"٣"', "true", "false", '"1_0"', '"０.５"'])
wrong_parts = st.sampled_from(
    [
        "1",
        "null",
        "[1, 2]",
        "[null]",
        '[{"type": "text", "text": 5}]',
        '[{"type": "image_url", "image_url": "https://x.test/a.png"}]',
        '[{"type": "image_url", "image_url": {"url": 7}}]',
        '[{"type": 3}]',
        '{"type": "text"}',
        '"plain"',
    ]
)
fragments = st.one_of(deep, deep_objects, bad_text, bad_numbers, lenient_numbers, wrong_parts)

# Where a fragment goes: a scalar field, a content, the tool fields, a nested price.
PLACES = [
    "content",
    "temperature",
    "max_tokens",
    "seed",
    "top_p",
    "model",
    "max_price",
    "tools",
    "tool_function",
    "tool_calls",
    "arguments",
    "messages",
]


def _body(route: str, endpoint: str, place: str) -> dict:
    body: dict = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, **ROUTES[route]}
    if place == "content":
        body["messages"][0]["content"] = HOLE
    elif place in ("temperature", "max_tokens", "seed", "top_p", "model", "messages"):
        body[place] = HOLE
    elif place == "max_price":
        price = {"prompt": HOLE, "completion": 1}
        if endpoint == "/api/llm/chat":
            body["max_price"] = price
        else:
            body["provider"] = {"max_price": price}
    elif place == "tools":
        body["tools"] = HOLE
    elif place == "tool_function":
        body["tools"] = [{"type": "function", "function": HOLE}]
    elif place in ("tool_calls", "arguments"):
        call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": HOLE}}
        tool_calls = HOLE if place == "tool_calls" else [call]
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": tool_calls},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ]
    return body


def _raw(body: dict, fragment: str) -> bytes:
    return json.dumps(body).replace(f'"{HOLE}"', fragment, 1).encode()


def _state(user) -> tuple:
    from billing.models import CreditHold, LedgerEntry
    from billing.selectors import balance_get
    from monitoring.models import UsageRecord

    return (
        balance_get(user=user),
        LedgerEntry.objects.count(),
        CreditHold.objects.count(),
        UsageRecord.objects.count(),
    )


def _check(response: httpx.Response, user, before: tuple, described: str) -> None:
    from billing.models import CreditHold
    from billing.services import ledger_reconcile

    FIGURES["requests"] += 1
    status = response.status_code
    if status >= 500:
        FIGURES["server_errors"] += 1
    assert status < 500, described
    if status >= 400:
        FIGURES["errors_4xx"] += 1
        error = response.json()["error"]
        assert all(isinstance(error.get(k), str) and error[k] for k in ("message", "type", "code")), described
        assert _state(user) == before, described
    else:
        FIGURES["ok_2xx"] += 1
    assert ledger_reconcile() == [], described
    assert not CreditHold.objects.filter(state=CreditHold.State.HELD).exists(), described


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    if FIGURES["requests"]:
        print(f"\nhostile fuzz figures: {FIGURES}")


@pytest.fixture
def target(providers, user, api_key, live_gateway, settings):
    settings.STRIPE_WEBHOOK_SECRET = stripe_shapes.WEBHOOK_SECRET
    settings.STRIPE_SECRET_KEY = "sk_test_suite_key"
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    providers.on(ANTHROPIC_HOST, lambda req, body: json_response(200, anthropic_message()))
    providers.on(GEMINI_HOST, lambda req, body: json_response(200, GEMINI_ANSWER))
    grant(user, 1000)
    with httpx.Client(base_url=live_gateway, timeout=30) as client:
        yield {"client": client, "user": user, "headers": {"Authorization": f"Bearer {api_key}"}}


fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/api/llm/chat"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_hostile_bodies_on_every_chat_route_are_never_a_5xx(target, endpoint, route):
    user = target["user"]

    @given(place=st.sampled_from(PLACES), fragment=fragments, stream=st.booleans())
    @fuzz_settings
    def fuzz(place, fragment, stream):
        body = _body(route, endpoint, place)
        if stream:
            body["stream"] = True
        raw = _raw(body, fragment)
        before = _state(user)
        response = target["client"].post(
            endpoint, content=raw, headers={**target["headers"], "content-type": "application/json"}
        )
        _check(
            response,
            user,
            before,
            f"{endpoint} {route} {place}: {raw[:300]!r} -> {response.status_code} {response.text[:300]}",
        )

    fuzz()


WEBHOOK_PLACES = ["amount_total", "id", "type", "client_reference_id", "metadata", "data", "currency"]


def test_hostile_signed_webhooks_are_never_a_5xx(target):
    user = target["user"]

    @given(place=st.sampled_from(WEBHOOK_PLACES), fragment=st.one_of(fragments, st.integers().map(str)))
    @fuzz_settings
    def fuzz(place, fragment):
        session = stripe_shapes.checkout_session(
            user_id=user.pk,
            cents=1000,
            session_id=f"cs_test_{uuid.uuid4().hex[:12]}",
            payment_intent="pi_fuzz",
        )
        event = stripe_shapes.event("checkout.session.completed", session)
        if place in ("id", "type"):
            event[place] = HOLE
        elif place == "data":
            event["data"] = HOLE
        elif place == "metadata":
            session["metadata"] = {"user_id": HOLE}
        else:
            session[place] = HOLE
        payload = _raw(event, fragment)
        before = _state(user)
        response = target["client"].post(
            "/api/billing/stripe/webhook",
            content=payload,
            headers={"Stripe-Signature": stripe_shapes.sign(payload), "content-type": "application/json"},
        )
        _check(
            response,
            user,
            before,
            f"webhook {place}: {payload[:300]!r} -> {response.status_code} {response.text[:300]}",
        )

    fuzz()
