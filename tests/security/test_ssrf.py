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


# --- Embedded IPv4 and names (issue 11) ------------------------------------------------------------

EMBEDDED_METADATA = [
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64
    "http://[::a9fe:a9fe]/",  # IPv4-compatible
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped
    "http://[2002:a9fe:a9fe::]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254 (obfuscated)
]


@pytest.mark.parametrize("url", EMBEDDED_METADATA)
def test_ipv4_embedded_in_ipv6_is_decoded_and_refused(url):
    for allow_private in (False, True):
        with pytest.raises(UnsafeURL, match="link-local and metadata"):
            base_url_validate(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "url", ["http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[::7f00:1]/"]
)
def test_embedded_loopback_is_private(url):
    with pytest.raises(UnsafeURL, match="private and loopback"):
        base_url_validate(url, allow_private=False)
    assert base_url_validate(url, allow_private=True) == url


def test_embedded_public_ipv4_passes():
    assert base_url_validate("http://[64:ff9b::808:808]/", allow_private=False)  # 8.8.8.8
    assert base_url_validate("http://[2606:4700::1111]/", allow_private=False)


class StubResolver:
    """getaddrinfo without DNS or a hosts file: name -> addresses, changeable between calls."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        import socket

        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for address in self.answers[host]:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)))
        return out


@pytest.fixture
def resolver(monkeypatch):
    from smartspec import urlsafety

    stub = StubResolver({})
    monkeypatch.setattr(urlsafety, "getaddrinfo", stub)
    return stub


@pytest.mark.parametrize(
    "answers, refused",
    [
        (["127.0.0.1"], "private and loopback"),
        (["169.254.169.254"], "link-local and metadata"),
        (["93.184.216.34", "10.0.0.7"], "private and loopback"),  # every address counts
        (["64:ff9b::a9fe:a9fe"], "link-local and metadata"),
        (["93.184.216.34", "2606:2800:220:1::248"], None),
    ],
)
def test_names_are_resolved_and_every_address_checked(resolver, answers, refused):
    resolver.answers["rt-internal.test"] = answers
    url = "http://rt-internal.test:8210/api/v1"
    if refused:
        with pytest.raises(UnsafeURL, match=refused):
            base_url_validate(url, allow_private=False, resolve=True)
    else:
        assert base_url_validate(url, allow_private=False, resolve=True) == url
    assert resolver.asked == ["rt-internal.test"]


def test_metadata_behind_a_name_is_refused_even_when_private_is_allowed(resolver):
    resolver.answers["meta.example"] = ["169.254.169.254"]
    with pytest.raises(UnsafeURL, match="link-local"):
        base_url_validate("http://meta.example/", allow_private=True, resolve=True)


def test_a_name_that_does_not_resolve_at_start_up_is_left_to_the_connect_check(resolver):
    assert base_url_validate("https://later.example/v1", allow_private=False, resolve=True)


def test_settings_resolve_base_url_names_at_start_up(resolver):
    from smartspec.settings import base_urls_validate

    resolver.answers["rt-internal.test"] = ["127.0.0.1"]
    with pytest.raises(Exception, match=r"OPENROUTER_BASE_URL: .*resolves to 127\.0\.0\.1"):
        base_urls_validate(
            {"OPENROUTER_BASE_URL": "http://rt-internal.test:8210/api/v1"}, allow_private=False
        )
    base_urls_validate({"OPENROUTER_BASE_URL": "http://rt-internal.test:8210/api/v1"}, allow_private=True)


@pytest.mark.django_db
def test_the_transport_checks_names_when_connecting(resolver, settings):
    """The real transport (aiohttp): a name that resolved to a public address at start-up and now
    answers 127.0.0.1 is refused at connect time; the provider key never leaves the process."""
    import asyncio
    import socket
    import threading

    from gateway import transport
    from gateway.providers.base import UpstreamRequest
    from smartspec.errors import UpstreamUnavailable

    received = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            received.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    upstream = UpstreamRequest(
        method="POST",
        url=f"http://rt-internal.test:{port}/v1/chat/completions",
        headers={"authorization": "Bearer sk-or-v1-secret-provider-key"},
        json={"model": "x"},
    )

    async def send():
        try:
            return await transport.send(upstream, provider="openrouter", connect_timeout=3, read_timeout=3)
        finally:
            await transport.transport_close()

    transport.set_transport_for_tests(None)
    try:
        resolver.answers["rt-internal.test"] = ["93.184.216.34"]
        base_url_validate(upstream.url, allow_private=False, resolve=True)  # start-up: fine
        resolver.answers["rt-internal.test"] = ["127.0.0.1"]  # ... the answer changes later
        settings.ALLOW_PRIVATE_BASE_URLS = False
        with pytest.raises(UpstreamUnavailable):
            asyncio.run(send())
        assert received == []
        # The same name, allowed to be private: the stub is what the transport used to connect.
        settings.ALLOW_PRIVATE_BASE_URLS = True
        assert asyncio.run(send()).status == 200
        assert len(received) == 1 and b"rt-internal.test" in received[0]
    finally:
        server.close()
        transport.set_transport_for_tests(None)
