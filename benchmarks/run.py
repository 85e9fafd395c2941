"""`make bench`: measure what the gateway adds to a provider call.

Starts a fake upstream, the minimal Django proxy (S0b) and the full gateway
(2 uvicorn workers, PostgreSQL + Redis, billing on), drives them with `wrk`
and an asyncio client from separate processes, prints a table and writes
`benchmarks/results/latest.json`. Needs PostgreSQL and Redis (BENCH_DATABASE_URL,
BENCH_REDIS_URL; defaults: local servers, database `smartspec_bench`, Redis db 9).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
DURATION = os.environ.get("BENCH_DURATION", "10s")
DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smartspec_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
MODEL = "openai/gpt-4o-mini"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 32})

_procs: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, start_new_session=True
    )
    _procs.append(proc)
    return proc


def stop_all() -> None:
    for proc in _procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in _procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    _procs.clear()


def uvicorn(app: str, port: int, workers: int = 1, env: dict | None = None) -> subprocess.Popen:
    args = [str(BIN / "uvicorn"), app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    args += ["--loop", "uvloop", "--http", "httptools", "--workers", str(workers)]
    return start(args, env)


def wrk(url: str, connections: int, auth: str = "", body: str = BODY) -> dict:
    threads = str(min(2, connections))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "-s", "benchmarks/post.lua", url],
        cwd=ROOT,
        env={**os.environ, "BENCH_AUTH": auth, "BENCH_BODY": body},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stats = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    stats["rps"] = round(stats["requests"] / (stats["duration_us"] / 1e6), 1)
    stats["p50_ms"] = stats.pop("p50_us") / 1000
    stats["p99_ms"] = stats.pop("p99_us") / 1000
    return stats


def python(*args: str, env: dict | None = None) -> str:
    """`python ARGS` in the project directory, with `env` on top of ours; its standard output."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def last_json(out: str) -> dict:
    """The JSON object a measuring script prints on its last line."""
    return json.loads(out.strip().splitlines()[-1])


def client(mode: str, url: str, auth: str = "", **kw) -> dict:
    args = ["-m", "benchmarks.stream_client", mode, url, "--auth", auth]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return last_json(python(*args))


def manage(*args: str, env: dict) -> str:
    return python("manage.py", *args, env=env)


def prepare_database(env: dict) -> str:
    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True, capture_output=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    manage("migrate", "--noinput", env=env)
    key = manage("issue_api_key", "bench", "--create-user", env=env).strip().splitlines()[-1]
    manage("grant_credits", "bench", "10000000", "--reason", "benchmark", env=env)
    return key


def gateway_env(upstream_port: int) -> dict:
    return {
        "DJANGO_READ_DOT_ENV_FILE": "false",
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-secret-key",
        "ALLOWED_HOSTS": "*",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": DB_URL,
        "REDIS_URL": REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "LOG_DIR": str(ROOT / "var" / "bench-logs"),
        "OPENROUTER_API_KEY": "sk-or-bench-not-a-real-key",
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        # The fake upstream listens on loopback, which the SSRF check refuses outside DEBUG.
        "ALLOW_PRIVATE_BASE_URLS": "true",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }


def main() -> None:
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "duration": DURATION,
    }
    up, up_slow, proxy, gw = free_port(), free_port(), free_port(), free_port()
    env = gateway_env(up)
    try:
        uvicorn("benchmarks.fake_upstream:app", up, env={"FAKE_TOKENS": "16"})
        uvicorn(
            "benchmarks.fake_upstream:app", up_slow, env={"FAKE_TOKENS": "20", "FAKE_CHUNK_INTERVAL_MS": "50"}
        )
        wait_http(f"http://127.0.0.1:{up}/v1/models")
        key = prepare_database(env)
        upstream = f"http://127.0.0.1:{up}/v1/chat/completions"

        print("S0  upstream alone", flush=True)
        results["S0"] = {"c1": wrk(upstream, 1), "c64": wrk(upstream, 64)}

        print("S0b minimal Django proxy", flush=True)
        uvicorn("benchmarks.minimal_proxy:application", proxy, workers=2, env={"UPSTREAM_URL": upstream})
        wait_http(f"http://127.0.0.1:{proxy}/")
        results["S0b"] = {
            "c64": wrk(f"http://127.0.0.1:{proxy}/v1/chat/completions", 64),
            # What our stack (Django + the HTTP client) adds at 1 connection before any gateway work.
            "c1": wrk(f"http://127.0.0.1:{proxy}/v1/chat/completions", 1),
        }

        print("S1/S2 full gateway", flush=True)
        gw_proc = uvicorn("smartspec.asgi:application", gw, workers=2, env=env)
        wait_http(f"http://127.0.0.1:{gw}/healthz")
        gw_url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        client("warmup", gw_url, key)
        results["S1"] = wrk(gw_url, 1, key)
        results["S2"] = wrk(gw_url, 64, key)

        print("S3 streaming", flush=True)
        results["S3"] = {
            "upstream": client("ttft", upstream, "", n=200),
            "gateway": client("ttft", gw_url, key, n=200),
        }

        print("S4 1,000 concurrent streams", flush=True)
        gw_proc.send_signal(signal.SIGTERM)
        gw_proc.wait(timeout=30)
        env_slow = gateway_env(up_slow)
        gw_proc = uvicorn("smartspec.asgi:application", gw, workers=2, env=env_slow)
        wait_http(f"http://127.0.0.1:{gw}/healthz")
        results["S4"] = client("concurrent", gw_url, key, n=1000, watch_pid=gw_proc.pid)

        print("S5 database round trips per billed call", flush=True)
        results["S5"] = last_json(python("-m", "benchmarks.count_queries", env=env))
    finally:
        stop_all()

    summarize(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {RESULTS / 'latest.json'}")


def summarize(r: dict) -> None:
    s0, s0b, s1, s2, s3, s4, s5 = (r[k] for k in ("S0", "S0b", "S1", "S2", "S3", "S4", "S5"))
    ratio = s2["rps"] / s0b["c64"]["rps"] if s0b["c64"]["rps"] else 0
    ttft_added = s3["gateway"]["ttft_p50_ms"] - s3["upstream"]["ttft_p50_ms"]
    rows = [
        ("S0 upstream alone, 64 conns", f"{s0['c64']['rps']} req/s, p50 {s0['c64']['p50_ms']} ms", ""),
        (
            "S0b minimal proxy, 64 conns",
            f"{s0b['c64']['rps']} req/s, p50 {s0b['c64']['p50_ms']} ms"
            + (
                f" (1 conn: +{s0b['c1']['p50_ms'] - s0['c1']['p50_ms']:.2f} ms p50 over S0)"
                if "c1" in s0b
                else ""
            ),
            "",
        ),
        (
            "S1 added latency, 1 conn",
            f"p50 +{s1['p50_ms'] - s0['c1']['p50_ms']:.2f} ms, p99 +{s1['p99_ms'] - s0['c1']['p99_ms']:.2f} ms",
            "p50 <= 3 ms, p99 <= 10 ms",
        ),
        (
            "S2 gateway, 64 conns",
            f"{s2['rps']} req/s ({ratio:.0%} of S0b), p50 {s2['p50_ms']} ms, p99 {s2['p99_ms']} ms, "
            f"errors {s2['errors'] + s2['non2xx']}",
            ">= 50% of S0b, 0 errors",
        ),
        (
            "S3 streaming",
            f"added TTFT p50 {ttft_added:.2f} ms; {s3['gateway']['chunks_per_s']} chunks/s "
            f"(upstream {s3['upstream']['chunks_per_s']})",
            "added TTFT p50 <= 3 ms",
        ),
        (
            "S4 1,000 concurrent streams",
            f"{s4['completed']} completed, {s4['errors']} errors, peak RSS {s4['peak_rss_mb']} MB/worker",
            "all complete, <= 300 MB",
        ),
        (
            "S5 DB round trips per billed call",
            f"{s5['queries']} before the answer, +{s5.get('deferred', {}).get('queries', 0)} after it",
            "<= 6",
        ),
    ]
    width = max(len(a) for a, _, _ in rows)
    print(f"\n{'scenario'.ljust(width)} | result | target")
    for name, result, target in rows:
        print(f"{name.ljust(width)} | {result} | {target}")


if __name__ == "__main__":
    main()
