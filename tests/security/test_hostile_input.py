"""Issue 11's hostile inputs, each through the live ASGI app (uvicorn on a local port): a 4xx JSON
error in the project's shape, one log line and no traceback, and nothing moved (balance, holds,
ledger entries, usage rows, Stripe events and no upstream call)."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest

from tests.billing import stripe_shapes
from tests.gateway.conftest import grant

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]
DEEP = "[" * 5000 + "]" * 5000  # 10 KB nested 5,000 deep
ANTHROPIC = "anthropic/claude-sonnet-4.6"
GEMINI = "google/gemini-3.1-flash-lite"


def _deep_object() -> bytes:
    return ('{"messages": ' + DEEP + "}").encode()


def _snapshot(user) -> tuple:
    from billing.models import CreditHold, LedgerEntry, StripeEvent
    from billing.selectors import balance_get
    from gateway.models import ApiKey
    from monitoring.models import UsageRecord

    return (
        balance_get(user=user),
        LedgerEntry.objects.count(),
        CreditHold.objects.count(),
        UsageRecord.objects.count(),
        # A refused event may be stored as failed (for staff); none is ever applied.
        StripeEvent.objects.exclude(status=StripeEvent.Status.FAILED).count(),
        ApiKey.objects.count(),
    )


@pytest.fixture
def caller(providers, user, api_key, live_gateway, stripe_settings):
    grant(user, 100)
    with httpx.Client(base_url=live_gateway, timeout=30) as client:
        yield {"client": client, "user": user, "key": {"Authorization": f"Bearer {api_key}"}}


@pytest.fixture
def stripe_settings(settings):
    settings.STRIPE_WEBHOOK_SECRET = stripe_shapes.WEBHOOK_SECRET
    settings.STRIPE_SECRET_KEY = "sk_test_suite_key"
    return settings


def _refused(caller, caplog, method: str, path: str, *, content: bytes, headers: dict, status=None):
    """Send one request; assert a 4xx JSON error, one log line without a traceback, nothing moved."""
    before = _snapshot(caller["user"])
    calls_before = len(caller_network(caller))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = caller["client"].request(
            method, path, content=content, headers={"content-type": "application/json", **headers}
        )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert error["message"] and error["type"] and error["code"]
    assert _snapshot(caller["user"]) == before
    assert len(caller_network(caller)) == calls_before, "an upstream was called"
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None and r.exc_text is None for r in problems), "a traceback was logged"
    # One line per refusal (Django's request log); a webhook that fails while being applied also
    # logs the event's failure for staff.
    assert len(problems) <= (2 if "webhook" in path else 1), [r.getMessage() for r in problems]
    assert not any(r.levelno >= logging.ERROR for r in problems), [r.getMessage() for r in problems]
    return response


_NETWORK = {}


def caller_network(caller):
    return _NETWORK["network"].calls


@pytest.fixture(autouse=True)
def _remember_network(providers):
    _NETWORK["network"] = providers
    yield
    _NETWORK.clear()


def _chat(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


# --- Deep nesting, unauthenticated and with a key -------------------------------------------------


def test_deep_nesting_with_a_bad_key_is_a_4xx(caller, caplog):
    response = _refused(
        caller,
        caplog,
        "POST",
        "/v1/chat/completions",
        content=_deep_object(),
        headers={"Authorization": "Bearer x"},
    )
    assert response.status_code in (400, 401)


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/api/llm/chat", "/api/credits/topup", "/api/billing/checkout"]
)
def test_deep_nesting_with_a_key_is_a_400(caller, caplog, path):
    response = _refused(
        caller, caplog, "POST", path, content=_deep_object(), headers=caller["key"], status=400
    )
    assert response.json()["error"]["code"] == "json_too_deep"


def test_deep_nesting_on_the_webhook_is_a_400(caller, caplog):
    payload = ('{"id": "evt_deep", "type": "checkout.session.completed", "data": ' + DEEP + "}").encode()
    _refused(
        caller,
        caplog,
        "POST",
        "/api/billing/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": stripe_shapes.sign(payload)},
        status=400,
    )


def test_oversized_body_is_a_413(caller, caplog, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = _chat({"messages": [{"role": "user", "content": "x" * 5000}], "model": "openai/gpt-4o"})
    _refused(caller, caplog, "POST", "/api/llm/chat", content=body, headers=caller["key"], status=413)


# --- Text and numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/llm/chat"])
@pytest.mark.parametrize(
    "raw, code",
    [
        (b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_text"),
        (
            b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
            "invalid_text",
        ),
        (
            b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
            "invalid_number",
        ),
        (
            b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
            "number_out_of_range",
        ),
        (
            b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 18446744073709551616}',
            "number_out_of_range",
        ),
        (
            b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": -9223372036854775809}',
            "number_out_of_range",
        ),
    ],
    ids=["lone_surrogate", "nul", "nan", "float_overflow", "seed_over_64_bits", "seed_under_64_bits"],
)
def test_text_and_numbers_are_refused(caller, caplog, path, raw, code):
    response = _refused(caller, caplog, "POST", path, content=raw, headers=caller["key"], status=400)
    assert response.json()["error"]["code"] == code


def test_a_huge_max_price_is_a_400(caller, caplog):
    body = {
        "model": "openai/gpt-4o",
        "messages": HI,
        "provider": {"max_price": {"prompt": "1e999999999", "completion": 1}},
    }
    response = _refused(
        caller, caplog, "POST", "/v1/chat/completions", content=_chat(body), headers=caller["key"], status=400
    )
    assert "max_price.prompt" in response.json()["error"]["message"]
    native = {"model": "openai/gpt-4o", "messages": HI, "max_price": {"prompt": "1e999999999"}}
    _refused(
        caller, caplog, "POST", "/api/llm/chat", content=_chat(native), headers=caller["key"], status=400
    )


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/llm/chat"])
@pytest.mark.parametrize(
    "field, value",
    [
        ("max_tokens", "١٢"),
        ("max_tokens", True),
        ("temperature", True),
        ("temperature", "٠.٥"),
        ("max_tokens", "1_2"),
    ],
)
def test_lenient_numbers_are_refused(caller, caplog, path, field, value):
    body = {"model": "openai/gpt-4o", "messages": HI, field: value}
    response = _refused(caller, caplog, "POST", path, content=_chat(body), headers=caller["key"], status=400)
    assert field in response.json()["error"]["message"]


def test_topup_amount_as_a_boolean_or_foreign_digits_is_a_400(caller, caplog):
    for amount in (True, "١٠", "1e999", "NaN"):
        body = {"payment_usd": amount, "payment_id": "pi_123"}
        _refused(
            caller,
            caplog,
            "POST",
            "/api/credits/topup",
            content=_chat(body),
            headers=caller["key"],
            status=400,
        )
        _refused(
            caller,
            caplog,
            "POST",
            "/api/billing/checkout",
            content=_chat({"amount_usd": amount}),
            headers=caller["key"],
            status=400,
        )


# --- Wrong-typed parts on the translated routes -------------------------------------------------

WRONG_PARTS = {
    "function_as_string": {"messages": HI, "tools": [{"type": "function", "function": "get_weather"}]},
    "image_url_as_string": {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": "https://x.test/a.png"}]}
        ]
    },
    "tool_calls_as_string": {
        "messages": [*HI, {"role": "assistant", "content": None, "tool_calls": "get_weather()"}]
    },
    "arguments_as_object": {
        "messages": [
            *HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                ],
            },
        ]
    },
    "content_part_number": {"messages": [{"role": "user", "content": [1, 2]}]},
    "content_part_null": {"messages": [{"role": "user", "content": [None]}]},
    "content_number": {"messages": [{"role": "user", "content": 12}]},
    "text_part_without_text": {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
}


@pytest.mark.parametrize("model", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/llm/chat"])
@pytest.mark.parametrize("case", sorted(WRONG_PARTS))
def test_wrong_typed_parts_on_translated_routes_are_a_400(caller, caplog, model, path, case):
    body = {**WRONG_PARTS[case], "model": model, "use_openrouter": False}
    if path == "/api/llm/chat" and "tools" in body:
        pytest.skip("the native API has no tools")
    response = _refused(caller, caplog, "POST", path, content=_chat(body), headers=caller["key"], status=400)
    assert response.json()["error"]["code"] in ("invalid_message_part", "invalid_messages")


# --- The keys page and the webhook ---------------------------------------------------------------


def _signed_in(caller) -> httpx.Client:
    client = caller["client"]
    page = client.get("/accounts/login/")
    token = client.cookies["csrftoken"]
    assert page.status_code == 200
    login = client.post(
        "/accounts/login/",
        data={"username": "alice", "password": "pw-alice-123", "csrfmiddlewaretoken": token},
    )
    assert login.status_code == 302
    return client


def test_a_nul_in_a_key_name_is_refused_on_the_keys_page(caller):
    client = _signed_in(caller)
    client.get("/keys/")
    before = _snapshot(caller["user"])
    response = client.post(
        "/keys/", data={"name": "lap\x00top", "csrfmiddlewaretoken": client.cookies["csrftoken"]}
    )
    assert response.status_code == 400
    assert "Null characters are not allowed" in response.text
    assert _snapshot(caller["user"]) == before


def _event(obj: dict, event_id: str | None = None) -> dict:
    return stripe_shapes.event("checkout.session.completed", obj, event_id=event_id)


def _session(user, cents: int) -> dict:
    return stripe_shapes.checkout_session(
        user_id=user.pk, cents=cents, session_id=f"cs_test_{uuid.uuid4().hex[:12]}", payment_intent="pi_1"
    )


@pytest.mark.parametrize(
    "case",
    ["amount_2e12", "amount_over_64_bits", "nul_in_event_id", "foreign_digit_user", "surrogate_in_type"],
)
def test_hostile_signed_webhooks_are_a_400(caller, caplog, case):
    user = caller["user"]
    if case == "amount_2e12":
        payload = stripe_shapes.body(_event(_session(user, 2 * 10**12)))
    elif case == "amount_over_64_bits":
        payload = stripe_shapes.body(_event(_session(user, 10_000))).replace(
            b'"amount_total": 10000', b'"amount_total": 99999999999999999999999'
        )
    elif case == "nul_in_event_id":
        payload = stripe_shapes.body(_event(_session(user, 10_000), event_id="evt_\x00nul"))
    elif case == "foreign_digit_user":
        session = _session(user, 10_000)
        session["client_reference_id"] = "٣"
        session["metadata"] = {"user_id": "٣"}
        payload = stripe_shapes.body(_event(session))
    else:
        payload = stripe_shapes.body(_event(_session(user, 10_000))).replace(
            b'"checkout.session.completed"', b'"checkout.session.\\udc00"'
        )
    _refused(
        caller,
        caplog,
        "POST",
        "/api/billing/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": stripe_shapes.sign(payload)},
        status=400,
    )


# --- A hostile upstream ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["openrouter", "anthropic", "gemini"])
def test_an_upstream_answer_nested_5000_deep_is_a_failed_attempt_not_a_500(caller, route):
    from tests.gateway.conftest import ANTHROPIC_HOST, GEMINI_HOST, OPENROUTER_HOST

    deep = ('{"choices": ' + DEEP + "}").encode()
    network = _NETWORK["network"]
    for host in (OPENROUTER_HOST, ANTHROPIC_HOST, GEMINI_HOST, "api.openai.com"):
        network.on(
            host,
            lambda req, body: httpx.Response(200, content=deep, headers={"content-type": "application/json"}),
        )
    model = {"openrouter": "openai/gpt-4o", "anthropic": ANTHROPIC, "gemini": GEMINI}[route]
    before = _snapshot(caller["user"])
    for stream in (False, True):
        body = {"model": model, "messages": HI, "use_openrouter": route == "openrouter", "stream": stream}
        response = caller["client"].post("/v1/chat/completions", json=body, headers=caller["key"])
        assert response.status_code == 502, response.text[:300]
        assert response.json()["error"]["code"] in ("upstream_unavailable", "all_attempts_failed")
    after = _snapshot(caller["user"])
    assert after[0] == before[0]  # nothing charged, no hold left
