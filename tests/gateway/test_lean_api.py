"""The API faces as plain ASGI (`smartspec.lean`), driven through the production application.

What Django's handler and the API middleware did for these paths, the lean face must do the same:
413 for a body over the limit (declared or not), the request id, a JSON 500 in the face's own error
shape, the dashboard session for a request with cookies, and a client's disconnect cancelling the
call, which then releases its hold.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from asgiref.sync import sync_to_async

from tests.gateway.conftest import OPENROUTER_HOST, balance, json_response, openrouter_completion
from tests.support import asgi_post_scope

BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


async def call(scope_path: str, body: bytes, headers: list[tuple[bytes, bytes]], *, disconnect_after=None):
    """One request through `smartspec.asgi.application`; (status, headers, body). With
    `disconnect_after` (seconds), the client hangs up that long after sending its body."""
    from smartspec.asgi import application

    scope = asgi_post_scope(scope_path, headers)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    sent: list[dict] = []

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        if disconnect_after is not None:
            await asyncio.sleep(disconnect_after)
        else:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    status = start["status"] if start else None
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]} if start else {}
    return status, response_headers, b"".join(m.get("body", b"") for m in sent[1:])


def auth(api_key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {api_key}".encode()), (b"content-type", b"application/json")]


@pytest.mark.django_db(transaction=True)
async def test_a_call_answers_with_its_request_id_and_a_length(providers, funded_user, api_key):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    headers = [*auth(api_key), (b"x-request-id", b"lean-call-1")]
    status, response_headers, body = await call("/v1/chat/completions", json.dumps(BODY).encode(), headers)
    assert status == 200, body
    assert response_headers["x-request-id"] == "lean-call-1"
    assert int(response_headers["content-length"]) == len(body)
    assert json.loads(body)["usage"]["credits"] == 0.125
    # An id that is not a valid one is replaced by a new one.
    status, response_headers, _ = await call(
        "/v1/chat/completions", json.dumps(BODY).encode(), [*auth(api_key), (b"x-request-id", b"bad id!")]
    )
    assert status == 200 and len(response_headers["x-request-id"]) == 32


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_the_limit_is_413_and_moves_nothing(
    providers, funded_user, api_key, settings, declared
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({**BODY, "messages": [{"role": "user", "content": "x" * 200_000}]}).encode()
    headers = auth(api_key) + ([(b"content-length", str(len(body)).encode())] if declared else [])
    before = await sync_to_async(balance)(funded_user)
    status, _, answer = await call("/v1/chat/completions", body, headers)
    assert status == 413
    assert json.loads(answer)["error"]["type"] == "invalid_request_error"
    assert await sync_to_async(balance)(funded_user) == before
    assert providers.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")],
)
async def test_an_unexpected_error_is_a_json_500_in_the_faces_shape(api_key, monkeypatch, path, shape):
    from smartspec import asgi

    async def broken(request):
        raise RuntimeError("boom: sk-ss-should-never-show")

    monkeypatch.setitem(asgi._api.routes, path, broken)
    status, _, body = await call(path, json.dumps(BODY).encode(), auth(api_key))
    assert status == 500
    error = json.loads(body)
    if shape == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["type"] == "server_error"
    assert b"boom" not in body and b"sk-ss" not in body


@pytest.mark.django_db(transaction=True)
async def test_a_request_with_a_session_cookie_goes_to_the_full_site(user, client):
    # The lean face has no sessions: a key-less call there is a 401. The full site knows the session
    # and, as for any form post of a signed-in user, asks for the CSRF token.
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    status, _, body = await call(
        "/v1/responses", json.dumps({"model": "openai/gpt-4o", "input": "Hi"}).encode(), [(b"cookie", cookie)]
    )
    assert status == 403, body
    assert json.loads(body)["error"]["code"] == "csrf_failed"
    status, _, body = await call(
        "/v1/responses", json.dumps({"model": "openai/gpt-4o", "input": "Hi"}).encode(), []
    )
    assert status == 401, body


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_hangs_up_cancels_the_call_and_its_hold_is_released(
    providers, funded_user, api_key
):
    from gateway import transport

    answered = asyncio.Event()

    async def slow(request):
        await asyncio.sleep(5)
        answered.set()
        return json_response(200, openrouter_completion())

    transport.set_transport_for_tests(httpx.MockTransport(slow))  # the `network` fixture restores it
    before = await sync_to_async(balance)(funded_user)
    status, _, _ = await asyncio.wait_for(
        call("/v1/chat/completions", json.dumps(BODY).encode(), auth(api_key), disconnect_after=0.3),
        timeout=4,
    )
    assert status is None  # nothing was sent: the call was cancelled before its answer
    assert not answered.is_set()
    after = await sync_to_async(balance)(funded_user)
    assert after["held"] == 0 and after["balance"] == before["balance"]


def test_lean_headers_are_case_insensitive():
    from smartspec.lean import LeanHeaders

    headers = LeanHeaders({"authorization": "Bearer x"})
    assert headers.get("Authorization") == "Bearer x" and "AUTHORIZATION" in headers
    assert headers["authorization"] == "Bearer x" and headers.get("X-Missing", "") == ""
    assert isinstance(httpx.Headers(headers), httpx.Headers)


@pytest.mark.django_db(transaction=True)
async def test_django_security_checks_apply_on_the_lean_face(providers, funded_user, api_key, settings):
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    body = json.dumps(BODY).encode()
    # A Host not in ALLOWED_HOSTS: the 400 the full site gives, as JSON, and nothing is charged.
    before = await sync_to_async(balance)(funded_user)
    status, _, answer = await call("/v1/chat/completions", body, [(b"host", b"evil.example"), *auth(api_key)])
    assert status == 400 and json.loads(answer)["error"]["type"] == "invalid_request_error"
    assert await sync_to_async(balance)(funded_user) == before
    # Plain HTTP with SECURE_SSL_REDIRECT: Django's redirect, before any work.
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    from smartspec import asgi
    from smartspec.lean import LeanApi

    lean = LeanApi(asgi._api.routes)  # the middleware reads its settings when it is built
    original, asgi._api = asgi._api, lean
    try:
        status, headers, _ = await call("/v1/chat/completions", body, auth(api_key))
        assert status == 301 and headers["location"] == "https://testserver/v1/chat/completions"
        status, headers, _ = await call(
            "/v1/chat/completions", body, [(b"x-forwarded-proto", b"https"), *auth(api_key)]
        )
        assert status == 200
        assert headers["strict-transport-security"].startswith("max-age=3600")
        assert headers["x-content-type-options"] == "nosniff"
    finally:
        asgi._api = original
    assert (await sync_to_async(balance)(funded_user))["balance"] == before["balance"] - 125_000
