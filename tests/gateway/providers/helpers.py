"""Helpers for the provider tests: a mocked upstream at the transport, recorded response shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from gateway.providers.base import ProviderConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sse_response(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=fixture_bytes(name))


def json_response(name: str, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(
        status, headers={"content-type": "application/json", **(headers or {})}, content=fixture_bytes(name)
    )


class Upstream:
    """Answers every provider request with `handler` and keeps what was sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Callable[[httpx.Request], httpx.Response] | None = None

    def respond(self, response_or_handler) -> None:
        if callable(response_or_handler):
            self.handler = response_or_handler
        else:
            self.handler = lambda request: response_or_handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.handler is not None, "no upstream response set"
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    @property
    def last_json(self) -> dict:
        return json.loads(self.last.content)


def make_config(name: str, wire: str, base_url: str, **kwargs) -> ProviderConfig:
    return ProviderConfig(
        name=name, wire=wire, base_url=base_url, api_key=kwargs.pop("api_key", f"key-{name}-SECRET"), **kwargs
    )


async def collect(stream):
    return [delta async for delta in stream]
