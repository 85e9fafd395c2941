import pytest

from tests.gateway.conftest import balance

pytestmark = pytest.mark.django_db


def test_demo_answers_chat_completions(demo_only, funded_user, http):
    before = balance(funded_user)
    r = http.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "ping"}]},
        content_type="application/json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["provider"] == "demo"
    assert "ping" in body["choices"][0]["message"]["content"]
    assert body["usage"]["credits"] == "0.000000"
    assert balance(funded_user) == before
