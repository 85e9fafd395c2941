"""S5: database round trips of one billed, non-streaming call (counted, not timed).

Runs one warm-up call, then counts every statement and commit that any thread's connection sends
during a second call through the full ASGI stack, and apart from them what the call writes after its
answer (the usage row, gateway.aftercall). Expects the gateway's environment (see run.py) and the
`bench` user.
"""

import asyncio
import json
import os
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.backends.base.base import BaseDatabaseWrapper  # noqa: E402
from django.db.backends.utils import CursorWrapper  # noqa: E402
from django.test import AsyncClient  # noqa: E402

from gateway import aftercall  # noqa: E402
from gateway.keys import api_key_create  # noqa: E402

counter = {"statements": 0, "commits": 0, "sql": []}
_execute = CursorWrapper._execute_with_wrappers
_commit = BaseDatabaseWrapper.commit


def _counting_execute(cursor, sql, params, many, executor):
    # At the cursor: the DB-step threads keep (or re-take) their connections between calls.
    counter["statements"] += 1
    counter["sql"].append(sql[:120])
    return _execute(cursor, sql, params, many, executor)


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
    await asyncio.to_thread(aftercall.call_records_flush)
    # The usage row waits for the count of the request path to end.
    write = aftercall._records_write
    answered = threading.Event()

    def write_after_answer(batch):
        answered.wait(timeout=30)
        write(batch)

    aftercall._records_write = write_after_answer
    CursorWrapper._execute_with_wrappers = _counting_execute
    BaseDatabaseWrapper.commit = _counting_commit
    response = await client.post("/v1/chat/completions", body, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.content
    path = {"queries": counter["statements"] + counter["commits"], **counter}
    counter.update(statements=0, commits=0, sql=[])
    answered.set()
    await asyncio.to_thread(aftercall.call_records_flush)
    deferred = {"queries": counter["statements"] + counter["commits"], **counter}
    return {**path, "deferred": deferred}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
