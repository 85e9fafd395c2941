"""Helpers for tests that run the project in another process: a live uvicorn, a Celery worker."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """The URL of the test database, for a server or worker started in a subprocess."""
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _subprocess_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "smartspec.settings_test", **env}


@contextlib.contextmanager
def live_uvicorn(env: dict[str, str], *, workers: int = 2) -> Iterator[str]:
    """uvicorn serving the project in a subprocess with `env` on top of ours; yields its base URL."""
    with live_uvicorn_process(env, workers=workers) as (base, _pid):
        yield base


@contextlib.contextmanager
def live_uvicorn_process(
    env: dict[str, str], *, workers: int = 1, args: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    """`live_uvicorn` that also yields the server's pid (with one worker, the process that serves)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "smartspec.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning", *args],
        cwd=ROOT,
        env=_subprocess_env(env),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def celery_worker(name: str, env: dict[str, str] | None = None):
    """A real Celery worker (solo pool) on the configured broker; yields the app, no longer eager."""
    from smartspec.celery import app

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "smartspec", "worker", "--pool=solo", "--concurrency=1",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{name}-{os.getpid()}@%h"],
        cwd=ROOT,
        env=_subprocess_env({"CELERY_TASK_ALWAYS_EAGER": "false", **(env or {})}),
    )  # fmt: skip
    try:
        app.conf.task_always_eager = False
        yield app
    finally:
        app.conf.task_always_eager = True
        worker.terminate()
        worker.wait(timeout=30)


def asgi_post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    """The ASGI scope of a POST to `path` on the test server (a `host` header first, then `headers`)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
