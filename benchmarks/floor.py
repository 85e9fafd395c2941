"""`python -m benchmarks.floor`: the gateway against the floor of its own work.

Runs `make bench`'s set-up (fake upstream, minimal proxy S0b, the gateway with 2 workers on
PostgreSQL + Redis) plus `benchmarks/floor_app.py` (2 workers): the I/O of one billed call and
nothing else, asynchronously on the event loop. Measures, `--rounds` times one after the other:
at 1 connection p50 and p99 of the upstream (S0), S0b, the floor and the gateway; at 64
connections (one account) the req/s of S0b, the floor and the gateway, with the CPU time per call
of every process group on the machine (the servers' workers, PostgreSQL, Redis, the upstream, the
kernel's threads) from /proc. `--pool` is the floor's connections per worker (the gateway's
`GATEWAY_DB_THREADS` default is the pool size, 16); `--gateway-env` adds settings to the gateway's.

    python -m benchmarks.floor [--rounds 2] [--pool 16] [--gateway-env GATEWAY_DB_THREADS=4]

Prints one JSON line per measure and the load average.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import time

from benchmarks import run as bench
from benchmarks.stream_client import children


def _cpu_snapshot() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime in ticks) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            out[int(entry)] = (raw[raw.index("(") + 1 : raw.rindex(")")], int(fields[11]) + int(fields[12]))
    return out


def _group(name: str, pid: int, workers: set[int]) -> str:
    if pid in workers:
        return "workers"
    for group in ("postgres", "redis", "uvicorn", "wrk"):
        if name.startswith(group):
            return "upstream" if group == "uvicorn" else group  # the servers' workers are counted above
    return "kernel" if name.startswith(("kworker", "jbd2", "ksoftirqd")) else "other"


def load(url: str, server_pid: int, auths: list[str], duration: str) -> dict:
    """wrk at 64 connections: req/s and microseconds of CPU per call by process group."""
    workers = set(children(server_pid))
    before = _cpu_snapshot()
    stats = bench.wrk(url, 64, auths, duration=duration)
    used: collections.Counter = collections.Counter()
    for pid, (name, ticks) in _cpu_snapshot().items():
        old = before.get(pid)
        used[_group(name, pid, workers)] += ticks - (old[1] if old and old[0] == name else 0)
    per_call = 1e6 / os.sysconf("SC_CLK_TCK") / max(stats["requests"], 1)
    cpu = {group: round(ticks * per_call) for group, ticks in used.items() if group != "other"}
    return {"rps": stats["rps"], "errors": bench.errors(stats), "cpu_us": cpu}


def _account(name: str) -> tuple[str, str]:
    """(account id, user id) of a bench user."""
    sql = (
        "SELECT a.id, a.user_id FROM billing_creditaccount a JOIN auth_user u ON u.id = a.user_id "
        f"WHERE u.username = '{name}'"
    )
    out = subprocess.run(["psql", bench.DB_URL, "-Atc", sql], capture_output=True, text=True, check=True)
    account_id, user_id = out.stdout.strip().split("|")
    return account_id, user_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", default="8s")
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    up, gateway_port, floor_port = bench.free_port(), bench.free_port(), bench.free_port()
    env = bench.gateway_env(up)
    upstream = f"http://127.0.0.1:{up}/v1/chat/completions"
    try:
        key, proxy, proxy_url = bench.proxy_start(up, env)
        gateway_env = {**env, **dict(item.split("=", 1) for item in args.gateway_env)}
        gateway = bench.uvicorn("smartspec.asgi:application", gateway_port, workers=2, env=gateway_env)
        account_id, user_id = _account("bench")
        floor_env = {
            **env,
            "FLOOR_DSN": bench.DB_URL,
            "FLOOR_ACCOUNT": account_id,
            "FLOOR_USER": user_id,
            "FLOOR_POOL": str(args.pool),
            "UPSTREAM_URL": upstream,
        }
        floor = bench.uvicorn("benchmarks.floor_app:app", floor_port, workers=2, env=floor_env)
        gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        floor_url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
        bench.wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
        bench.wait_http(f"http://127.0.0.1:{floor_port}/")
        for url, auths in ((proxy_url, []), (floor_url, []), (gateway_url, [key])):
            bench.warm(url, auths)
        servers = {
            "S0b": (proxy_url, proxy.pid, []),
            "floor": (floor_url, floor.pid, []),
            "gateway": (gateway_url, gateway.pid, [key]),
        }
        sampler = bench.LoadAverage()
        sampler.start()
        for _ in range(args.rounds):
            for name, url, auths in (("S0", upstream, []), *((n, u, a) for n, (u, _, a) in servers.items())):
                stats = bench.wrk(url, 1, auths, duration="6s")
                print(
                    json.dumps(
                        {"conns": 1, "server": name, "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"]}
                    ),
                    flush=True,
                )
            for name, (url, pid, auths) in servers.items():
                print(
                    json.dumps({"conns": 64, "server": name, **load(url, pid, auths, args.duration)}),
                    flush=True,
                )
            time.sleep(1)
        print(json.dumps({"load_average": sampler.stop()}))
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
