"""`python -m benchmarks.stages`: the per-call CPU budget, in microseconds per stage.

Runs the same set-up as `make bench` (fake upstream, PostgreSQL + Redis, 2 uvicorn workers) for the
minimal proxy and the gateway, drives each with `wrk` at 64 connections, and meanwhile samples every
worker with `py-spy record --gil` (only the thread holding the GIL, i.e. Python's own CPU). Each
sample is given to the innermost frame that names a stage (below); a stage's share of the samples
times the workers' measured CPU time (from /proc) per call served is its microseconds per call.

    python -m benchmarks.stages [--duration 10s] [--connections 64] [--out benchmarks/results/stages.json]

Prints a table (Markdown) and writes the JSON next to `make bench`'s results.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks import run as bench
from benchmarks.stream_client import children

# (stage, markers): a frame belongs to the stage when its text contains one of the markers. The
# innermost matching frame of a sample decides, so "hold" wins over "auth" for the hold's own SQL.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("parse", ("smartspec/jsonbody.py", "chat_completion_request", "_json_body", "read_body")),
    ("auth", ("api_key_authenticate", "_presented_key", "key_hash")),
    ("route", ("chat_prepare_sync", "route_plan", "catalog_prime", "catalog_unprime", "_circuits_apply")),
    ("key limits", ("limits_admit", "limits_settle")),
    ("hold", ("hold_place", "_hold_amount")),
    ("upstream request build", ("build_request", "attempt_request")),
    ("upstream parse", ("parse_response", "parse_stream")),
    ("settle", ("hold_settle", "hold_release", "outcome_price_sync", "_settle (")),
    ("response build", ("openai_format.py", "response_build", "openai_json", "relay_")),
    ("record (after the answer)", ("gateway/aftercall.py", "monitoring/services.py", "_call_record")),
    (
        "HTTP client (httpx, aiohttp)",
        ("httpx/", "httpx_aiohttp/", "aiohttp/", "gateway/transport.py", "multidict", "yarl/"),
    ),
    ("DB driver (psycopg, pool)", ("psycopg/", "psycopg_pool/", "django/db/")),
    ("cache client (redis-py)", ("redis/", "django/core/cache/", "smartspec/cache.py")),
    (
        "thread hops (executor, asgiref)",
        ("asgiref/", "concurrent/futures/", "gateway/db.py", "threading.py", "_shielded"),
    ),
    (
        "web framework (Django handler, uvicorn)",
        ("django/", "uvicorn/", "smartspec/asgi.py", "smartspec/middleware.py", "smartspec/fastpath.py"),
    ),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop")),
]
OTHER = "other"


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, markers in STAGES:
            if any(marker in frame for marker in markers):
                return stage
    return OTHER


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def profile(url: str, server_pid: int, auth: str, duration: str, connections: int = 64) -> dict:
    """wrk (64 connections by default) while py-spy samples each worker; stage -> microseconds per call."""
    workers = children(server_pid)
    tmp = Path(tempfile.mkdtemp(prefix="stages-"))
    seconds = str(int(duration.rstrip("s")))
    spies = [
        subprocess.Popen(
            [
                *(str(bench.BIN / "py-spy"), "record", "--gil", "--nonblocking", "-r", "200", "-d", seconds),
                *("-f", "raw", "-o", str(tmp / f"{pid}.txt"), "-p", str(pid)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in workers
    ]
    before = {pid: cpu_ticks(pid) for pid in workers}
    stats = bench.wrk(url, connections, [auth] if auth else [])
    after = {pid: cpu_ticks(pid) for pid in workers}
    for spy in spies:
        spy.wait()
    samples: collections.Counter[str] = collections.Counter()
    for pid in workers:
        path = tmp / f"{pid}.txt"
        for line in path.read_text().splitlines() if path.exists() else []:
            stack, _, count = line.rpartition(" ")
            if stack:
                samples[stage_of(stack.split(";")[1:])] += int(count)
    total = sum(samples.values()) or 1
    cpu_us_per_call = (
        sum(after[p] - before[p] for p in workers)
        / os.sysconf("SC_CLK_TCK")
        * 1e6
        / max(stats["requests"], 1)
    )
    return {
        "rps": stats["rps"],
        "worker_cpu_us_per_call": round(cpu_us_per_call),
        "stages_us": {stage: round(cpu_us_per_call * n / total) for stage, n in samples.most_common()},
        "samples": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", default=bench.DURATION)
    parser.add_argument("--out", default=str(bench.RESULTS / "stages.json"))
    # 1 gives the CPU on the path of one call at a time (S1's), with no batching by a busy loop.
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    up, gw = bench.free_port(), bench.free_port()
    env = bench.gateway_env(up)
    results = {}
    try:
        key, proc, proxy_url = bench.proxy_start(up, env)
        results["minimal proxy"] = profile(proxy_url, proc.pid, "", args.duration, args.connections)
        proc = bench.uvicorn("smartspec.asgi:application", gw, workers=2, env=env)
        bench.wait_http(f"http://127.0.0.1:{gw}/healthz")
        url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        bench.warm(url, [key])
        results["gateway"] = profile(url, proc.pid, key, args.duration, args.connections)
    finally:
        bench.stop_all()
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results: dict) -> str:
    names = list(results)
    stages = [s for s, _ in STAGES] + [OTHER]
    lines = [
        "| stage (µs of worker CPU per call) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for stage in stages:
        cells = [str(results[n]["stages_us"].get(stage, "")) for n in names]
        if any(cells):
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total (from /proc)** | "
        + " | ".join(str(results[n]["worker_cpu_us_per_call"]) for n in names)
        + " |"
    )
    lines.append("| req/s while sampled | " + " | ".join(str(results[n]["rps"]) for n in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
