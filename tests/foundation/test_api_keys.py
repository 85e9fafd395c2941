import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from gateway.keys import KEY_PREFIX, api_key_create, api_key_revoke, key_is_well_formed
from gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def _issue(username: str, *extra: str) -> str:
    out = io.StringIO()
    call_command("issue_api_key", username, *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def _whoami(header: str | None):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get("/api/auth/whoami")


def test_issue_api_key_prints_key_on_last_line_and_stores_only_a_hash(django_user_model):
    raw = _issue("carol", "--create-user")
    assert raw.startswith(KEY_PREFIX) and key_is_well_formed(raw)
    key = ApiKey.objects.get(user__username="carol")
    assert raw.startswith(key.prefix)
    # The raw key is nowhere in the table.
    for row in ApiKey.objects.values():
        assert all(raw not in str(value) for value in row.values())


def test_issue_api_key_without_user_fails(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        _issue("nobody")


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_both_header_forms_authenticate(user, scheme):
    _, raw = api_key_create(user=user)
    response = _whoami(f"{scheme} {raw}")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer sk-ss-wrong", "Bearer sk-ss-" + "A" * 38, "Basic abc", "Bearer a b"],
)
def test_missing_or_wrong_key_is_401_json(user, header):
    response = _whoami(header)
    assert response.status_code == 401
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["type"] == "authentication_error"


def test_well_formed_but_unknown_key_is_401(user):
    from gateway.keys import key_generate

    raw = key_generate()
    response = _whoami(f"Bearer {raw}")
    assert response.status_code == 401
    assert raw not in response.content.decode()


def test_revoked_key_is_401(user):
    key, raw = api_key_create(user=user)
    assert _whoami(f"Bearer {raw}").status_code == 200
    api_key_revoke(user=user, key_id=key.pk)
    assert _whoami(f"Bearer {raw}").status_code == 401


def test_cannot_revoke_someone_elses_key(user, other_user):
    from smartspec.errors import NotFound

    key, _ = api_key_create(user=other_user)
    with pytest.raises(NotFound):
        api_key_revoke(user=user, key_id=key.pk)
    key.refresh_from_db()
    assert key.revoked_at is None


def test_inactive_user_key_is_401(user):
    _, raw = api_key_create(user=user)
    user.is_active = False
    user.save()
    assert _whoami(f"Bearer {raw}").status_code == 401


def test_last_used_is_recorded(user):
    key, raw = api_key_create(user=user)
    assert key.last_used_at is None
    _whoami(f"Bearer {raw}")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_keys_are_unique_and_checksummed():
    from gateway.keys import key_generate

    keys = {key_generate() for _ in range(200)}
    assert len(keys) == 200
    raw = keys.pop()
    tampered = raw[:-7] + ("B" if raw[-7] != "B" else "C") + raw[-6:]
    assert key_is_well_formed(raw) and not key_is_well_formed(tampered)


def test_edited_limits_take_effect_despite_the_key_cache(user):
    from gateway.forms import ApiKeyLimitsForm
    from gateway.keys import api_key_authenticate

    key, raw = api_key_create(user=user)
    assert api_key_authenticate(raw).requests_per_minute == key.requests_per_minute  # now cached
    form = ApiKeyLimitsForm(
        {
            "requests_per_minute": 7,
            "tokens_per_minute": "",
            "credits_per_day_credits": "2.5",
            "credits_per_month_credits": "",
        },
        instance=key,
    )
    assert form.is_valid(), form.errors
    form.save()
    fresh = api_key_authenticate(raw)
    assert fresh.requests_per_minute == 7
    assert fresh.credits_per_day == 2_500_000


def test_revocation_beats_the_key_cache(user):
    from gateway.keys import api_key_authenticate

    key, raw = api_key_create(user=user)
    assert api_key_authenticate(raw) is not None  # now cached
    api_key_revoke(user=user, key_id=key.pk)
    assert api_key_authenticate(raw) is None


@pytest.mark.parametrize("path", ["/api/auth/whoami", "/v1/chat/completions", "/api/credits/balance"])
def test_401_names_the_bearer_scheme_on_every_api(client, path, user):
    method = client.post if path.startswith("/v1/") else client.get
    kwargs = {"data": "{}", "content_type": "application/json"} if path.startswith("/v1/") else {}
    response = method(path, HTTP_AUTHORIZATION="Bearer sk-ss-wrong", **kwargs)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
