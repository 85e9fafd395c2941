"""`python -m benchmarks.share`: the gateway's share of the minimal proxy, measured back to back.

On a shared virtual machine the host's speed moves by a quarter or more within minutes, so two
`make bench` runs of the same code can differ more than a change does. This runs the minimal proxy
and the gateway (the same set-up as `make bench`: fake upstream, PostgreSQL + Redis, 2 uvicorn
workers each) and measures them one right after the other at 64 connections, `--rounds` times: the
gateway's requests per second as a share of the proxy's, and its workers' CPU per call (from /proc)
over the proxy's. To compare two versions, run it in each checkout, alternating, and compare the
shares and ratios, not the raw figures.

    python -m benchmarks.share [--rounds 2] [--duration 8s]

Prints one JSON line per round and the load average.
"""

from __future__ import annotations

import argparse
import json
import os

from benchmarks import run as bench
from benchmarks.stages import cpu_ticks
from benchmarks.stream_client import children


def _measure(url: str, server_pid: int, auths: list[str], duration: str) -> tuple[float, float]:
    """(req/s, worker CPU microseconds per call) of one wrk run at 64 connections."""
    workers = children(server_pid)
    before = sum(cpu_ticks(pid) for pid in workers)
    stats = bench.wrk(url, 64, auths, duration=duration)
    used = sum(cpu_ticks(pid) for pid in workers) - before
    return stats["rps"], used / os.sysconf("SC_CLK_TCK") * 1e6 / max(stats["requests"], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", default="8s")
    args = parser.parse_args()
    up, gateway_port = bench.free_port(), bench.free_port()
    env = bench.gateway_env(up)
    try:
        key, proxy, proxy_url = bench.proxy_start(up, env)
        gateway = bench.uvicorn("smartspec.asgi:application", gateway_port, workers=2, env=env)
        bench.wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
        gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        bench.warm(proxy_url, [])
        bench.warm(gateway_url, [key])
        for _ in range(args.rounds):
            proxy_rps, proxy_cpu = _measure(proxy_url, proxy.pid, [], args.duration)
            gateway_rps, gateway_cpu = _measure(gateway_url, gateway.pid, [key], args.duration)
            row = {
                "proxy_rps": proxy_rps,
                "gateway_rps": gateway_rps,
                "share": round(gateway_rps / proxy_rps, 3),
                "proxy_cpu_us_per_call": round(proxy_cpu),
                "gateway_cpu_us_per_call": round(gateway_cpu),
                "cpu_ratio": round(gateway_cpu / proxy_cpu, 3),
            }
            print(json.dumps(row), flush=True)
    finally:
        bench.stop_all()
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
