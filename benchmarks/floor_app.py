"""The floor: the gateway's unavoidable I/O for one billed call, in the leanest Python we have.

A plain ASGI app (no Django request, no thread hops) that does for each POST exactly the I/O a
billed chat completion cannot skip, on the same drivers the gateway uses, asynchronously on the
event loop: one Redis read (an API key's cached entry, unpickled), the gateway's own hold statement
(`billing.services`, asynchronous commit, prepared), the upstream request on an aiohttp session, and
the gateway's own settle statement (durable commit, prepared); then it answers the upstream's JSON.

It leaves out everything else the gateway does: key and limit checks, routing, pricing, the usage
row, metrics and provider health. So its req/s is above and its added latency below what any
gateway doing this work in Python can reach on the same machine. `benchmarks/floor.py` runs it.

    FLOOR_DSN=postgresql://... FLOOR_ACCOUNT=1 FLOOR_USER=1 FLOOR_POOL=16 REDIS_URL=redis://... \\
        UPSTREAM_URL=http://127.0.0.1:9100/v1/chat/completions uvicorn benchmarks.floor_app:app
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import uuid

import aiohttp
import django
import orjson
import redis.asyncio as aredis
from psycopg_pool import AsyncConnectionPool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")
django.setup()

from billing.services import _COLLECT_PREFIX, _HOLD_PLACE_ASYNC_SQL, _HOLD_SETTLE_SQL  # noqa: E402

KEY = "floor:key"
HOLD = 30_000  # micro-credits: gpt-4o-mini's worst case for the bench's body, as the gateway holds
COST = 11_400  # what the fake upstream's usage costs
_state: dict = {}


async def _startup() -> None:
    pool = AsyncConnectionPool(
        os.environ["FLOOR_DSN"],
        min_size=1,
        max_size=int(os.environ.get("FLOOR_POOL", "16")),
        open=False,
        kwargs={"autocommit": True},
    )
    await pool.open()
    cache = aredis.Redis.from_url(os.environ["REDIS_URL"])
    account = {"user_id": int(os.environ["FLOOR_USER"]), "account_id": int(os.environ["FLOOR_ACCOUNT"])}
    # About the size of a cached API key with its limits.
    await cache.set(
        KEY, pickle.dumps({**account, "name": "bench", "scopes": ["chat"] * 20, "pad": "x" * 300})
    )
    _state.update(pool=pool, cache=cache, http=aiohttp.ClientSession(), upstream=os.environ["UPSTREAM_URL"])


async def _call(body: bytes) -> bytes:
    orjson.loads(body)
    key = pickle.loads(await _state["cache"].get(KEY))
    now = dt.datetime.now(dt.UTC)
    hold = {
        "amount": HOLD,
        "now": now,
        "account_id": key["account_id"],
        "user_id": key["user_id"],
        "request_id": uuid.uuid4().hex,
        "expires_at": now + dt.timedelta(seconds=900),
    }
    async with _state["pool"].connection() as conn:
        hold_id = (await (await conn.execute(_HOLD_PLACE_ASYNC_SQL, hold, prepare=True)).fetchone())[0]
    headers = {"content-type": "application/json"}
    async with _state["http"].post(_state["upstream"], data=body, headers=headers) as answer:
        data = orjson.loads(await answer.read())
    settle = {
        "hold_id": hold_id,
        "amount": COST,
        "now": dt.datetime.now(dt.UTC),
        "reference": "",
        "description": "floor",
        "collect_prefix": _COLLECT_PREFIX,
    }
    async with _state["pool"].connection() as conn:
        await (await conn.execute(_HOLD_SETTLE_SQL, settle, prepare=True)).fetchone()
    return orjson.dumps(data)


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _startup()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    out = await _call(body) if scope["method"] == "POST" else b"{}"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": out})
