import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _assert_error_shape(response, status):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    return error


@pytest.mark.parametrize("path", ["/api/nope", "/v1/nope", "/api/credits/nope/deeper"])
def test_unknown_api_path_is_json_404(client, path):
    error = _assert_error_shape(client.get(path), 404)
    assert error["type"] == "not_found_error"


def test_unknown_page_outside_api_stays_html(client):
    response = client.get("/definitely-not-here/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_wrong_method_is_json_405(api_client):
    response = api_client.delete("/api/auth/whoami")
    error = _assert_error_shape(response, 405)
    assert error["code"] == "method_not_allowed"


def test_malformed_json_is_400_not_500(api_client):
    response = api_client.generic(
        "POST", "/api/auth/whoami", data=b"{not json", content_type="application/json"
    )
    # whoami is GET-only, so the method fails first; parse errors are covered on POST endpoints later.
    assert response.status_code in (400, 405)
    _assert_error_shape(response, response.status_code)


def test_oversized_body_is_json_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api_client.generic(
        "POST", "/api/auth/whoami", data=b"x" * 4096, content_type="application/json"
    )
    error = _assert_error_shape(response, 413)
    assert error["code"] == "request_too_large"


def test_csrf_failure_on_api_is_json(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/auth/whoami", data="{}", content_type="application/json")
    assert response.status_code in (403, 405)
    _assert_error_shape(response, response.status_code)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_says_redis_is_not_configured_when_it_is_not(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "not configured"}


def test_readyz_reports_redis_ok_only_when_it_answers(client, settings):
    import os

    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = os.environ["REDIS_URL"]
    assert client.get("/readyz").json()["checks"]["redis"] == "ok"


def test_readyz_fails_when_redis_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable"


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")["X-Request-ID"]
    assert made != "bad id with spaces" and len(made) == 32


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/auth/whoami" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").stat().st_size > 1000
