import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import celery_worker

ROOT = Path(__file__).resolve().parents[2]


def _run_settings(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update({"DJANGO_SETTINGS_MODULE": "smartspec.settings", "DJANGO_READ_DOT_ENV_FILE": "false"})
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _run_settings({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_starts_without_secret_key():
    result = _run_settings({"DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_empty_values_in_env_file_mean_defaults():
    # `make run` copies .env.example, whose unset variables are present but empty.
    result = _run_settings(
        {"DEBUG": "true", "DATABASE_URL": "", "API_KEY_SECRET": "", "LOG_DIR": "", "REDIS_URL": ""}
    )
    assert result.returncode == 0, result.stderr
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], bool(s.API_KEY_SECRET), s.API_KEY_SECRET == s.SECRET_KEY)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY",)}
    env.update(
        DJANGO_SETTINGS_MODULE="smartspec.settings",
        DJANGO_READ_DOT_ENV_FILE="false",
        DEBUG="true",
        DATABASE_URL="",
        API_KEY_SECRET="",
        LOG_DIR="",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["django.db.backends.sqlite3", "True", "True"], out.stderr


def test_secrets_are_redacted_from_logs():
    from smartspec.logging import redact

    line = "calling with Authorization: Bearer sk-or-v1-abcdef0123456789 and key sk-ss-ABCDEFGH12345678"
    cleaned = redact(line)
    assert "sk-or-v1-abcdef" not in cleaned and "sk-ss-ABCDEFGH" not in cleaned
    assert "[REDACTED]" in cleaned


def test_ping_task_runs_eagerly_without_redis(settings):
    from monitoring.tasks import ping

    assert ping.delay().get(timeout=5) == "pong"


@pytest.mark.redis
def test_ping_round_trips_through_a_real_worker_on_redis(settings):
    with celery_worker("pingtest") as app:
        assert app.send_task("monitoring.ping").get(timeout=60) == "pong"


def test_check_deploy_is_clean_with_production_settings():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY",)}
    env.update(
        DJANGO_SETTINGS_MODULE="smartspec.settings",
        DJANGO_READ_DOT_ENV_FILE="false",
        DEBUG="false",
        SECRET_KEY="x7Gq2-production-like-secret-key-with-enough-length-and-entropy-9fK3mZ",
        ALLOWED_HOSTS="gateway.example.com",
    )
    for var in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        env.pop(var, None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_example_lists_every_variable_the_settings_read():
    import re

    settings_src = (ROOT / "smartspec" / "settings.py").read_text()
    read = set(
        re.findall(r'env(?:_str|\.bool|\.int|\.float|\.list|\.str)?\("([A-Z][A-Z0-9_]+)"', settings_src)
    )
    read.discard("DJANGO_READ_DOT_ENV_FILE")  # a switch for tests, not configuration
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - listed == set()
