"""Load client for the streaming scenarios (runs in its own process).

    python -m benchmarks.stream_client ttft URL --auth KEY --n 200
    python -m benchmarks.stream_client concurrent URL --auth KEY --n 1000 --watch-pid PID
    python -m benchmarks.stream_client warmup URL --auth KEY

Prints one JSON line of results last.
"""

import argparse
import asyncio
import json
import os
import statistics
import time

import aiohttp

BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Count to twenty"}],
    "max_tokens": 64,
    "stream": True,
}


def _headers(auth: str) -> dict:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    return headers


async def one_stream(session, url: str, auth: str) -> tuple[float, int, float, float]:
    """(time to first content chunk, content chunks, total seconds, time to the last content chunk)."""
    started = time.perf_counter()
    first = last = None
    chunks = 0
    async with session.post(url, json=BODY, headers=_headers(auth)) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        async for line in response.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            event = json.loads(line[6:])
            choices = event.get("choices") or []
            if choices and choices[0].get("delta", {}).get("content"):
                chunks += 1
                last = time.perf_counter() - started
                if first is None:
                    first = last
    return (first or 0.0), chunks, time.perf_counter() - started, (last or 0.0)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a server's workers)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return kids


async def ttft(url: str, auth: str, n: int) -> dict:
    async with aiohttp.ClientSession() as session:
        firsts, rates, relays = [], [], []
        for _ in range(n):
            first, chunks, total, last = await one_stream(session, url, auth)
            firsts.append(first * 1000)
            rates.append(chunks / total if total else 0)
            # The relay alone: chunks after the first over the time from the first to the last.
            relays.append((chunks - 1) / (last - first) if last > first else 0)
    firsts.sort()
    return {
        "n": n,
        "ttft_p50_ms": round(statistics.median(firsts), 3),
        "ttft_p99_ms": round(firsts[int(len(firsts) * 0.99) - 1], 3),
        "chunks_per_s": round(statistics.median(rates), 1),
        "relay_chunks_per_s": round(statistics.median(relays), 1),
    }


async def concurrent(url: str, auth: str, n: int, watch_pid: int) -> dict:
    peak = {}
    stop = asyncio.Event()

    async def watch():
        while not stop.is_set():
            for pid in children(watch_pid) or [watch_pid]:
                peak[pid] = max(peak.get(pid, 0.0), _rss_mb(pid))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        outcomes = await asyncio.gather(
            *(one_stream(session, url, auth) for _ in range(n)), return_exceptions=True
        )
    elapsed = time.perf_counter() - started
    stop.set()
    await watcher
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    return {
        "n": n,
        "completed": n - len(errors),
        "errors": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "wall_s": round(elapsed, 2),
        "peak_rss_mb": round(max(peak.values()) if peak else 0.0, 1),
        "workers": len(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ttft", "concurrent", "warmup"])
    parser.add_argument("url")
    parser.add_argument("--auth", default="")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--watch-pid", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "ttft":
        result = asyncio.run(ttft(args.url, args.auth, args.n))
    elif args.mode == "concurrent":
        result = asyncio.run(concurrent(args.url, args.auth, args.n, args.watch_pid))
    else:
        result = asyncio.run(ttft(args.url, args.auth, 5))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
