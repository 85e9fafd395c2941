"""`.env.example` as `make run` copies it: its values must not override the defaults the README
describes, and a refusal must name the setting that refused."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env_example() -> dict:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _settings(overrides: dict, expr: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _env_example() and k != "SECRET_KEY"}
    env.update(_env_example())
    env.update({"DJANGO_SETTINGS_MODULE": "smartspec.settings", "DJANGO_READ_DOT_ENV_FILE": "false"})
    env.update(overrides)
    code = f"import django; django.setup(); from django.conf import settings as s; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_env_example_ollama_url_starts_under_debug():
    # The example URL .env.example gives for Ollama, with the rest of .env.example as copied.
    result = _settings({"OLLAMA_BASE_URL": "http://127.0.0.1:11434"}, "s.ALLOW_PRIVATE_BASE_URLS, s.DEBUG")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_a_loopback_url_outside_debug_is_refused_naming_allow_private_base_urls():
    result = _settings(
        {"DEBUG": "false", "SECRET_KEY": "x" * 50, "OLLAMA_BASE_URL": "http://127.0.0.1:11434"}, "1"
    )
    assert result.returncode != 0
    assert "OLLAMA_BASE_URL" in result.stderr and "ALLOW_PRIVATE_BASE_URLS is off" in result.stderr
    allowed = _settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "OLLAMA_BASE_URL": "http://127.0.0.1:11434",
            "ALLOW_PRIVATE_BASE_URLS": "true",
        },
        "s.ALLOW_PRIVATE_BASE_URLS",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "True"


def test_signup_credits_default_follows_debug_and_an_explicit_value_wins():
    debug = _settings({}, "s.SIGNUP_CREDITS")
    assert debug.returncode == 0, debug.stderr
    assert debug.stdout.strip() == "1000"
    prod = _settings({"DEBUG": "false", "SECRET_KEY": "x" * 50}, "s.SIGNUP_CREDITS")
    assert prod.stdout.strip() == "0", prod.stderr
    explicit = _settings(
        {"DEBUG": "false", "SECRET_KEY": "x" * 50, "SIGNUP_CREDITS": "25"}, "s.SIGNUP_CREDITS"
    )
    assert explicit.stdout.strip() == "25", explicit.stderr
