"""`make bench`: measure what the gateway adds to a provider call.

Starts a fake upstream, the minimal Django proxy (S0b), LiteLLM's proxy (its own venv, see
`benchmarks/litellm_proxy.py`) and the full gateway (2 uvicorn workers, PostgreSQL + Redis, billing on),
drives them with `wrk` and an asyncio client from separate processes, prints a table with each target
and whether this run met it, and writes `benchmarks/results/latest.json`. Needs PostgreSQL and Redis
(BENCH_DATABASE_URL, BENCH_REDIS_URL; defaults: local servers, database `smartspec_bench`, Redis db 9).
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
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import litellm_proxy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
LOGS = ROOT / "var" / "bench-logs"
DURATION = os.environ.get("BENCH_DURATION", "10s")
DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smartspec_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
MODEL = "openai/gpt-4o-mini"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 32})
# The other faces of the one pipeline, each with the smallest body of its own API (path, body).
SURFACES = {
    "messages": (
        "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "Say hi"}]}),
    ),
    "responses": (
        "/v1/responses",
        json.dumps({"model": MODEL, "input": "Say hi", "max_output_tokens": 32, "store": False}),
    ),
    "embeddings": (
        "/v1/embeddings",
        json.dumps({"model": "openai/text-embedding-3-small", "input": "Say hi"}),
    ),
}
ACCOUNTS = 16
CREDITS = "10000000"
LOAD_EVERY_S = 5.0
# wrk's default (2 s) counts a slower answer as an error and leaves it out of the percentiles.
WRK_TIMEOUT = "30s"

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


def wait_log(path: Path, text: str, count: int, timeout: float = 120) -> None:
    """Until `text` is in the log `count` times (a line per worker that finished starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{path} does not say {text!r} {count} times; see the log")


def check_ok(url: str, body: str, auth: str) -> None:
    """One request before a load run: wrk only counts non-2xx answers, it never says why."""
    import httpx

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"}
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")


def start(
    args: list[str], env: dict | None = None, *, inherit: bool = True, log: Path | None = None
) -> subprocess.Popen:
    """Start a server in its own process group; `env` is on top of ours unless `inherit` is false."""
    with log.open("w") if log else contextlib.nullcontext(subprocess.DEVNULL) as stdout:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})} if inherit else env,
            stdout=stdout,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
    _procs.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its workers too); forgotten once stopped."""
    _procs.remove(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)


def stop_all() -> None:
    for proc in list(_procs):
        stop(proc)


def uvicorn(app: str, port: int, workers: int = 1, env: dict | None = None) -> subprocess.Popen:
    args = [str(BIN / "uvicorn"), app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    args += ["--loop", "uvloop", "--http", "httptools", "--workers", str(workers)]
    return start(args, env)


def wrk(
    url: str, connections: int, auths: Sequence[str] = (), body: str = BODY, duration: str = DURATION
) -> dict:
    """wrk's summary of POSTing `body` to `url`; with several keys, requests go to each in turn."""
    args = [f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}", f"--timeout={WRK_TIMEOUT}"]
    out = subprocess.run(
        ["wrk", *args, "-s", "benchmarks/post.lua", url],
        cwd=ROOT,
        env={**os.environ, "BENCH_AUTHS": ",".join(auths), "BENCH_BODY": body},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stats = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    stats["rps"] = round(stats["requests"] / (stats["duration_us"] / 1e6), 1)
    stats["p50_ms"] = stats.pop("p50_us") / 1000
    stats["p99_ms"] = stats.pop("p99_us") / 1000
    return stats


def warm(url: str, auths: Sequence[str]) -> None:
    """Two seconds at 64 connections, not measured: every worker has imported, connected and cached."""
    wrk(url, 64, auths, duration="2s")


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


def last_json(out: str):
    """The JSON value a measuring script prints on its last line."""
    return json.loads(out.strip().splitlines()[-1])


def client(mode: str, url: str, auth: str = "", **kw) -> dict:
    args = ["-m", "benchmarks.stream_client", mode, url, "--auth", auth]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return last_json(python(*args))


def manage(*args: str, env: dict) -> str:
    return python("manage.py", *args, env=env)


class LoadAverage(threading.Thread):
    """Samples the 1-minute load average every few seconds for the whole run (the cores are shared)."""

    def __init__(self, every: float = LOAD_EVERY_S):
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(float(Path("/proc/loadavg").read_text().split()[0]))
            if self._stopped.wait(self.every):
                return

    def stop(self) -> dict:
        self._stopped.set()
        self.join()
        values = self.samples or [0.0]
        return {
            "start": values[0],
            "min": min(values),
            "max": max(values),
            "samples": len(self.samples),
            "every_s": self.every,
        }


def prepare_database(env: dict) -> tuple[str, list[str]]:
    """A fresh database and Redis db; the `bench` account's key and the keys of ACCOUNTS others."""
    name = DB_URL.rsplit("/", 1)[1]
    admin = DB_URL.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True, capture_output=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    manage("migrate", "--noinput", env=env)
    names = ["bench", *(f"bench{i:02d}" for i in range(1, ACCOUNTS + 1))]
    key, *keys = last_json(python("-m", "benchmarks.accounts", CREDITS, *names, env=env))
    return key, keys


def proxy_start(upstream_port: int, env: dict) -> tuple[str, subprocess.Popen, str]:
    """The fake upstream, the bench database and the minimal proxy (2 workers) in front of the
    upstream: (a funded key, the proxy's process, its chat completions URL)."""
    uvicorn("benchmarks.fake_upstream:app", upstream_port, env={"FAKE_TOKENS": "16"})
    wait_http(f"http://127.0.0.1:{upstream_port}/v1/models")
    key, _ = prepare_database(env)
    port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    proc = uvicorn("benchmarks.minimal_proxy:application", port, workers=2, env={"UPSTREAM_URL": upstream})
    wait_http(f"http://127.0.0.1:{port}/")
    return key, proc, f"http://127.0.0.1:{port}/v1/chat/completions"


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
        "LOG_DIR": str(LOGS),
        "OPENROUTER_API_KEY": "sk-or-bench-not-a-real-key",
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        # The fake upstream listens on loopback, which the SSRF check refuses outside DEBUG.
        "ALLOW_PRIVATE_BASE_URLS": "true",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        # Metrics as production keeps them with several workers (an empty folder per gateway run).
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="ss-bench-metrics-"),
    }


def measure_litellm(upstream_port: int) -> dict:
    """LiteLLM's proxy on the same upstream, body and wrk runs as the gateway's S2 and S1."""
    port = free_port()
    log = LOGS / "litellm.log"
    config = litellm_proxy.config_write(upstream_port)
    proc = start(litellm_proxy.command(config, port), litellm_proxy.environment(), inherit=False, log=log)
    # Each worker says so once its startup is done; the port answers as soon as the first one is.
    wait_log(log, "Proxy initialized with Config", count=litellm_proxy.WORKERS)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    auth = [litellm_proxy.MASTER_KEY]
    check_ok(url, BODY, auth[0])
    warm(url, auth)
    result = {"version": litellm_proxy.VERSION, "c64": wrk(url, 64, auth), "c1": wrk(url, 1, auth)}
    stop(proc)
    return result


def measure_surfaces(base: str, key: str) -> dict:
    """Each other face at 64 connections, after one checked request."""
    results = {}
    for name, (path, body) in SURFACES.items():
        check_ok(base + path, body, key)
        results[name] = wrk(base + path, 64, [key], body=body)
    return results


def measure_baselines(upstream: str) -> dict:
    """S0, the upstream alone, and S0b, the minimal Django proxy in front of it."""
    results = {"S0": {"c1": wrk(upstream, 1), "c64": wrk(upstream, 64)}}
    print("S0b minimal Django proxy", flush=True)
    port = free_port()
    proc = uvicorn("benchmarks.minimal_proxy:application", port, workers=2, env={"UPSTREAM_URL": upstream})
    wait_http(f"http://127.0.0.1:{port}/")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    # At 1 connection: what our stack (Django + the HTTP client) adds before any gateway work.
    results["S0b"] = {"c64": wrk(url, 64), "c1": wrk(url, 1)}
    stop(proc)
    return results


def measure_gateway(env: dict, upstream: str, key: str, keys: list[str]) -> dict:
    """S1, S2 (one account, then `keys`), the other surfaces and S3, on one gateway."""
    port = free_port()
    proc = uvicorn("smartspec.asgi:application", port, workers=2, env=env)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/chat/completions"
    wait_http(f"{base}/healthz")
    client("warmup", url, key)
    warm(url, [key])
    results = {"S1": wrk(url, 1, [key]), "S2": wrk(url, 64, [key])}
    print(f"S2 over {len(keys)} accounts", flush=True)
    check_ok(url, BODY, keys[-1])
    results["S2_accounts"] = {"accounts": len(keys), **wrk(url, 64, keys)}
    print("surfaces: /v1/messages, /v1/responses, /v1/embeddings", flush=True)
    results["surfaces"] = measure_surfaces(base, key)
    print("S3 streaming", flush=True)
    results["S3"] = {
        "upstream": client("ttft", upstream, "", n=200),
        "gateway": client("ttft", url, key, n=200),
    }
    stop(proc)
    return results


def measure_streams(env: dict, key: str) -> dict:
    """S4: 1,000 concurrent streams on a gateway in front of the slow upstream; peak RSS per worker."""
    port = free_port()
    proc = uvicorn("smartspec.asgi:application", port, workers=2, env=env)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return client("concurrent", url, key, n=1000, watch_pid=proc.pid)


def main() -> None:
    began = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)
    install_s = litellm_proxy.venv_ensure()
    load = LoadAverage()
    load.start()
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "duration": DURATION,
        "litellm_install_s": install_s,
    }
    up, up_slow = free_port(), free_port()
    env = gateway_env(up)
    try:
        uvicorn("benchmarks.fake_upstream:app", up, env={"FAKE_TOKENS": "16"})
        uvicorn(
            "benchmarks.fake_upstream:app", up_slow, env={"FAKE_TOKENS": "20", "FAKE_CHUNK_INTERVAL_MS": "50"}
        )
        wait_http(f"http://127.0.0.1:{up}/v1/models")
        key, keys = prepare_database(env)
        upstream = f"http://127.0.0.1:{up}/v1/chat/completions"
        print("S0  upstream alone", flush=True)
        results.update(measure_baselines(upstream))
        print(f"LiteLLM {litellm_proxy.VERSION} proxy", flush=True)
        results["LiteLLM"] = measure_litellm(up)
        print("S1/S2 full gateway", flush=True)
        results.update(measure_gateway(env, upstream, key, keys))
        print("S4 1,000 concurrent streams", flush=True)
        results["S4"] = measure_streams(gateway_env(up_slow), key)
        print("S5 database round trips per billed call", flush=True)
        results["S5"] = last_json(python("-m", "benchmarks.count_queries", env=env))
    finally:
        stop_all()
        results["load_average"] = load.stop()
    results["wall_s"] = round(time.monotonic() - began, 1)

    summarize(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {RESULTS / 'latest.json'}")
    minutes, seconds = divmod(results["wall_s"], 60)
    print(f"total wall time: {int(minutes)} min {seconds:.0f} s (LiteLLM venv install: {install_s} s)")


def met(ok: bool) -> str:
    return "yes" if ok else "no"


def errors(run: dict) -> int:
    return run["errors"] + run["non2xx"]


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def rows_baselines(r: dict) -> list[tuple[str, str, str, str]]:
    s0, s0b = r["S0"], r["S0b"]
    return [
        (
            "S0 upstream alone",
            f"64 conns: {s0['c64']['rps']} req/s, p50 {s0['c64']['p50_ms']} ms; "
            f"1 conn: p50 {s0['c1']['p50_ms']} ms, p99 {s0['c1']['p99_ms']} ms",
            "",
            "",
        ),
        (
            "S0b minimal proxy",
            f"64 conns: {s0b['c64']['rps']} req/s, p50 {s0b['c64']['p50_ms']} ms; "
            f"1 conn: +{s0b['c1']['p50_ms'] - s0['c1']['p50_ms']:.2f} ms p50 over S0",
            "",
            "",
        ),
    ]


def rows_gateway(r: dict) -> list[tuple[str, str, str, str]]:
    s0, s0b, s1, s3, s4, s5 = (r[k] for k in ("S0", "S0b", "S1", "S3", "S4", "S5"))
    added_p50 = s1["p50_ms"] - s0["c1"]["p50_ms"]
    added_p99 = s1["p99_ms"] - s0["c1"]["p99_ms"]
    ttft_added = s3["gateway"]["ttft_p50_ms"] - s3["upstream"]["ttft_p50_ms"]
    relay = share(s3["gateway"]["chunks_per_s"], s3["upstream"]["chunks_per_s"])
    rows = [
        (
            "S1 added latency, 1 conn",
            f"p50 +{added_p50:.2f} ms, p99 +{added_p99:.2f} ms "
            f"(gateway p50 {s1['p50_ms']} ms, p99 {s1['p99_ms']} ms)",
            "p50 <= 2 ms, p99 <= 6 ms",
            met(added_p50 <= 2 and added_p99 <= 6),
        )
    ]
    for name, run in (
        ("S2 gateway, 64 conns, 1 account", r["S2"]),
        ("S2 gateway, 64 conns, 16 accounts", r["S2_accounts"]),
    ):
        ratio = share(run["rps"], s0b["c64"]["rps"])
        rows.append(
            (
                name,
                f"{run['rps']} req/s ({ratio:.0%} of S0b), p50 {run['p50_ms']} ms, "
                f"p99 {run['p99_ms']} ms, errors {errors(run)}",
                ">= 50% of S0b, 0 errors",
                met(ratio >= 0.5 and errors(run) == 0),
            )
        )
    rows += [
        (
            "S3 streaming",
            f"added TTFT p50 {ttft_added:.2f} ms; {s3['gateway']['chunks_per_s']} chunks/s per stream "
            f"({relay:.0%} of the upstream's {s3['upstream']['chunks_per_s']}); from first to last chunk "
            f"{s3['gateway'].get('relay_chunks_per_s')} chunks/s (upstream {s3['upstream'].get('relay_chunks_per_s')})",
            "added TTFT p50 <= 2 ms, >= 50% of upstream chunks/s",
            met(ttft_added <= 2 and relay >= 0.5),
        ),
        (
            "S4 1,000 concurrent streams",
            f"{s4['completed']} completed, {s4['errors']} errors, peak RSS {s4['peak_rss_mb']} MB/worker",
            "all complete, 0 errors, <= 150 MB/worker",
            met(s4["completed"] == s4["n"] and s4["errors"] == 0 and s4["peak_rss_mb"] <= 150),
        ),
        (
            "S5 DB round trips per billed call",
            f"{s5['queries']} before the answer, +{s5.get('deferred', {}).get('queries', 0)} after it",
            "<= 6",
            met(s5["queries"] <= 6),
        ),
    ]
    return rows


def rows_litellm(r: dict) -> list[tuple[str, str, str, str]]:
    lite, s1, s2 = r["LiteLLM"], r["S1"], r["S2"]
    speedup = share(s2["rps"], lite["c64"]["rps"])
    # Its numbers compare only if it answered 200s, as the gateway must.
    valid = lite["c64"]["non2xx"] == 0 and lite["c1"]["non2xx"] == 0
    return [
        (
            f"LiteLLM {lite['version']} proxy, {litellm_proxy.WORKERS} workers",
            f"64 conns: {lite['c64']['rps']} req/s, p50 {lite['c64']['p50_ms']} ms, "
            f"p99 {lite['c64']['p99_ms']} ms; 1 conn: p50 {lite['c1']['p50_ms']} ms, "
            f"p99 {lite['c1']['p99_ms']} ms; non-2xx {lite['c64']['non2xx'] + lite['c1']['non2xx']}, "
            f"socket errors {lite['c64']['errors'] + lite['c1']['errors']}",
            "",
            "",
        ),
        (
            "gateway vs LiteLLM, 64 conns",
            f"S2 {s2['rps']} req/s = {speedup:.2f}x LiteLLM's {lite['c64']['rps']}",
            ">= 2x",
            met(valid and speedup >= 2),
        ),
        (
            "gateway vs LiteLLM, 1 conn",
            f"p50 {s1['p50_ms']} vs {lite['c1']['p50_ms']} ms, p99 {s1['p99_ms']} vs {lite['c1']['p99_ms']} ms",
            "lower p50 and p99",
            met(valid and s1["p50_ms"] < lite["c1"]["p50_ms"] and s1["p99_ms"] < lite["c1"]["p99_ms"]),
        ),
    ]


def rows_surfaces(r: dict) -> list[tuple[str, str, str, str]]:
    chat = r["S2"]["rps"]
    rows = []
    for name, run in r["surfaces"].items():
        ratio = share(run["rps"], chat)
        rows.append(
            (
                f"{SURFACES[name][0]}, 64 conns",
                f"{run['rps']} req/s ({ratio:.0%} of chat completions' S2), p50 {run['p50_ms']} ms, "
                f"p99 {run['p99_ms']} ms, errors {errors(run)}",
                ">= 80% of S2, 0 errors",
                met(ratio >= 0.8 and errors(run) == 0),
            )
        )
    return rows


def row_load(r: dict) -> tuple[str, str, str, str]:
    load = r["load_average"]
    return (
        "load average (1 min) during the run",
        f"{load['start']} at start, min {load['min']}, max {load['max']} "
        f"({load['samples']} samples every {load['every_s']:.0f} s, {r['machine']['cpus']} cpus)",
        "",
        "",
    )


def summarize(r: dict) -> None:
    rows = rows_baselines(r) + rows_litellm(r) + rows_gateway(r) + rows_surfaces(r) + [row_load(r)]
    header = ("scenario", "result", "target", "met?")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
