"""S5: database round trips of one billed, non-streaming call (counted, not timed).

Runs one warm-up call, then counts every statement and commit that any
thread's connection sends during a second call through the full ASGI stack.
Expects the gateway's environment (see run.py) and the `bench` user.
"""

import asyncio
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.backends.base.base import BaseDatabaseWrapper  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.test import AsyncClient  # noqa: E402

from gateway.keys import api_key_create  # noqa: E402

counter = {"statements": 0, "commits": 0, "sql": []}


def _count(execute, sql, params, many, context):
    counter["statements"] += 1
    counter["sql"].append(sql[:120])
    return execute(sql, params, many, context)


def _on_connect(sender, connection, **kwargs):
    # A pooled connection handed back and taken again fires this once more for the same wrapper.
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


_commit = BaseDatabaseWrapper.commit


def _counting_commit(self):
    counter["commits"] += 1
    return _commit(self)


async def main() -> dict:
    user = await get_user_model().objects.aget(username="bench")
    _, raw = await asyncio.to_thread(api_key_create, user=user, name="s5")
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {raw}"}
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    # Warm-up: the key, the catalog and the account id reach the cache.
    await client.post("/v1/chat/completions", body, content_type="application/json", headers=auth)
    connection_created.connect(_on_connect)
    from django.db import connections

    for conn in connections.all():
        if conn.connection is not None and _count not in conn.execute_wrappers:
            conn.execute_wrappers.append(_count)
    BaseDatabaseWrapper.commit = _counting_commit
    counter.update(statements=0, commits=0, sql=[])
    response = await client.post("/v1/chat/completions", body, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.content
    return {"queries": counter["statements"] + counter["commits"], **counter}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
