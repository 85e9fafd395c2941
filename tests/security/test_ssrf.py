"""Provider base URLs against SSRF: metadata and link-local hosts never, private/loopback hosts only
in DEBUG or when explicitly allowed; a bad `*_BASE_URL` stops the server from starting."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartspec.urlsafety import UnsafeURL, base_url_validate

ROOT = Path(__file__).resolve().parents[2]

ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",  # 169.254.169.254 as one decimal number
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.254.1.1:8080/v1",
    "http://[fe80::1]/",
    "http://0.0.0.0:11434/",
    "http://224.0.0.1/",
    "ftp://api.openai.com/v1",
    "file:///etc/passwd",
    "https://user:pass@api.openai.com/v1",
    "https:///v1",
]
PRIVATE = [
    "http://127.0.0.1:11434",
    "http://localhost:11434",
    "http://10.0.0.5/v1",
    "http://192.168.1.20:11434",
    "http://172.16.3.4/v1",
    "http://[::1]:11434",
    "http://2130706433/",  # 127.0.0.1
    "http://ollama.internal:11434",
    "http://100.64.0.1/",  # carrier-grade NAT
]
PUBLIC = [
    "https://openrouter.ai/api/v1",
    "https://api.openai.com/v1",
    "https://api.anthropic.com",
    "https://generativelanguage.googleapis.com/v1beta",
    "https://api.groq.com/openai/v1",
    "https://api.z.ai/api/paas/v4",
    "http://8.8.8.8/",
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_metadata_link_local_and_malformed_urls_are_always_refused(url):
    for allow_private in (False, True):
        with pytest.raises(UnsafeURL):
            base_url_validate(url, allow_private=allow_private)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_loopback_hosts_only_when_allowed(url):
    with pytest.raises(UnsafeURL):
        base_url_validate(url, allow_private=False)
    assert base_url_validate(url, allow_private=True) == url


@pytest.mark.parametrize("url", PUBLIC)
def test_public_provider_urls_pass(url):
    assert base_url_validate(url, allow_private=False) == url


def _start(extra: dict) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if not k.endswith("_BASE_URL") and k != "ALLOW_PRIVATE_BASE_URLS"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "smartspec.settings",
            "DJANGO_READ_DOT_ENV_FILE": "false",
            "SECRET_KEY": "x" * 60,
            "DEBUG": "false",
            **extra,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "extra, starts",
    [
        ({"OPENAI_BASE_URL": "http://169.254.169.254/v1"}, False),
        ({"GEMINI_BASE_URL": "http://metadata.google.internal/"}, False),
        ({"OLLAMA_BASE_URL": "http://127.0.0.1:11434"}, False),
        ({"OLLAMA_BASE_URL": "http://127.0.0.1:11434", "ALLOW_PRIVATE_BASE_URLS": "true"}, True),
        ({"OLLAMA_BASE_URL": "http://localhost:11434", "DEBUG": "true"}, True),
        ({"ANTHROPIC_BASE_URL": "http://169.254.169.254/", "DEBUG": "true"}, False),
        ({"OPENROUTER_BASE_URL": "https://openrouter.ai/api/v1"}, True),
    ],
)
def test_settings_refuse_to_start_with_an_unsafe_base_url(extra, starts):
    result = _start(extra)
    if starts:
        assert result.returncode == 0 and "started" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        (name,) = [k for k in extra if k.endswith("_BASE_URL")]
        assert f"ImproperlyConfigured: {name}:" in result.stderr, result.stderr[-2000:]
