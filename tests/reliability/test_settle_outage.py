"""Every started call is settled: when the database goes down while calls wait on their upstream,
their answers are still delivered (never a 500 or a reset), their settles are journaled, and once the
database is back they are charged exactly what the answers said, with their usage rows; a server told
to stop settles every call it started before it exits. On a PostgreSQL of the test's own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal

import httpx
import psycopg
import pytest

from tests.reliability.conftest import gateway_env
from tests.reliability.fake_upstream import FakeUpstream
from tests.reliability.private_postgres import private_postgres
from tests.support import ROOT, _subprocess_env, live_uvicorn_process

HELLO = [{"role": "user", "content": "Say hello"}]
C = 10**6


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_subprocess_env(env),
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    return done.stdout


def _funded_key(env: dict) -> str:
    _manage(env, "migrate", "--noinput")
    key = _manage(env, "issue_api_key", "alice", "--create-user").strip().splitlines()[-1]
    _manage(env, "grant_credits", "alice", "100", "--reason", "outage test")
    return key


def _ledger(url: str) -> dict:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        balance, held = conn.execute("SELECT balance, held FROM billing_creditaccount").fetchone()
        (entries,) = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM billing_ledgerentry").fetchone()
        (open_holds,) = conn.execute(
            "SELECT COUNT(*) FROM billing_credithold WHERE state = 'held'"
        ).fetchone()
        rows = conn.execute("SELECT credits, status FROM monitoring_usagerecord ORDER BY id").fetchall()
    return {"balance": balance, "held": held, "entries": entries, "open_holds": open_holds, "rows": rows}


def _call(base: str, key: str, stream: bool) -> tuple[int, str, Decimal | None]:
    """(status, content, credits the answer reports)."""
    body = {"model": "openai/gpt-4o", "messages": HELLO, "stream": stream, "max_tokens": 100}
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    if not stream:
        r = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60)
        if r.status_code != 200:
            return r.status_code, r.text, None
        data = r.json()
        return 200, data["choices"][0]["message"]["content"], Decimal(str(data["usage"]["credits"]))
    text, credits = "", None
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        if r.status_code != 200:
            return r.status_code, r.read().decode(), None
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices"):
                text += chunk["choices"][0]["delta"].get("content") or ""
            if chunk.get("usage"):
                credits = Decimal(str(chunk["usage"]["credits"]))
    return 200, text, credits


def _in_flight(base: str, key: str, fake: FakeUpstream, calls: int) -> tuple[list, list[threading.Thread]]:
    """Start `calls` calls (half of them streams) and return once every one has reached the upstream
    (so each has its hold placed)."""
    results: list = []
    threads = [
        threading.Thread(target=lambda s=i % 2 == 1: results.append(_call(base, key, s)))
        for i in range(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while fake.count() < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.count() == calls
    return results, threads


def _settled(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = _ledger(url)
            if state["open_holds"] == 0 and state["held"] == 0:
                return state
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the calls' holds were not settled after the database came back")
        time.sleep(0.5)


@pytest.mark.postgres
def test_calls_answered_during_a_database_outage_are_settled_when_it_returns():
    fake = FakeUpstream(stall=3.0).start()
    fake.script("openrouter", "late")
    journal = tempfile.mkdtemp(prefix="ss-journal-")
    try:
        with private_postgres() as pg:
            env = gateway_env(fake, DATABASE_URL=pg.url, SETTLE_JOURNAL_DIR=journal, DB_POOL_TIMEOUT="2")
            key = _funded_key(env)
            with live_uvicorn_process(env) as (base, _pid):
                results, threads = _in_flight(base, key, fake, calls=6)
                pg.stop()  # every call holds its credits and waits on the upstream
                for thread in threads:
                    thread.join(60)
                # The answers came: no 500, no reset, content and the charge they will carry.
                assert sorted(r[0] for r in results) == [200] * 6, results
                assert all(r[1] and r[2] is not None and r[2] > 0 for r in results), results
                pg.start()
                state = _settled(pg.url)
    finally:
        fake.stop()

    reported = sum(int(r[2] * C) for r in results)
    assert state["balance"] == 100 * C - reported == state["entries"]
    assert len(state["rows"]) == 6 and sum(row[0] for row in state["rows"]) == reported
    assert all(status == "ok" for _credits, status in state["rows"])


def _exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                if any(line.startswith("State:") and "Z" in line for line in status):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
def test_a_server_told_to_stop_settles_every_call_it_started():
    """uvicorn's graceful shutdown (5 s here) cancels calls still waiting on a slow upstream: each is
    released (nothing was produced) or billed for what it produced, and none is left open."""
    fake = FakeUpstream(stall=20.0).start()
    fake.script("openrouter", "late")
    try:
        with private_postgres() as pg:
            env = gateway_env(fake, DATABASE_URL=pg.url)
            key = _funded_key(env)
            with live_uvicorn_process(env, args=("--timeout-graceful-shutdown", "2")) as (base, pid):
                results, threads = _in_flight(base, key, fake, calls=10)
                os.kill(pid, signal.SIGTERM)
                for thread in threads:
                    thread.join(60)
                # Let it exit by itself (a second signal would make uvicorn skip its shutdown).
                assert _exited(pid, timeout=60)
            state = _ledger(pg.url)
    finally:
        fake.stop()

    assert len(results) == 10
    assert (state["open_holds"], state["held"]) == (0, 0)
    assert state["balance"] == state["entries"] == 100 * C  # nothing was produced: nothing charged
    assert len(state["rows"]) == 10 and all(status == "cancelled" for _c, status in state["rows"])


@contextlib.contextmanager
def override_journal(folder: str):
    from django.test import override_settings

    with override_settings(SETTLE_JOURNAL_DIR=folder):
        yield


def _abandoned_hold(user, credits: int, request_id: str):
    """A hold whose call will never settle it (its worker died), already past its expiry."""
    import datetime as dt

    from django.utils import timezone

    from billing.models import CreditHold
    from billing.services import hold_place

    hold = hold_place(user=user, amount=credits * C, request_id=request_id)
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=5))
    return hold


def _usage(user, request_id: str) -> dict:
    """The usage row of a gpt-4o call that cost 3 credits on a hold of 7, as a worker journals it."""
    return {
        "user_id": user.pk, "api_key_id": None, "request_id": request_id,
        "model": "openai/gpt-4o", "provider": "openrouter", "task_type": "simple", "route": "explicit",
        "prompt_tokens": 10, "completion_tokens": 20, "cost_usd": "0.003", "credits": 3 * C, "hold": 7 * C,
        "latency_ms": 5, "ttft_ms": None, "attempts": [], "status": "ok",
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_embedded_server_expires_abandoned_holds_and_replays_journaled_settles_instead(
    user, tmp_path, fake, monkeypatch
):
    """No Celery beat (the embedded default): the server runs the expiry job itself. A hold with a
    journaled settle is charged by the replay, not expired; an abandoned one is expired."""
    from billing.models import CreditHold
    from billing.selectors import balance_get
    from gateway.settle_journal import settle_journal_add
    from tests.gateway.conftest import grant

    grant(user, 100)
    abandoned = _abandoned_hold(user, 5, "abandoned-call")
    answered = _abandoned_hold(user, 7, "answered-during-outage")
    usage = _usage(user, "answered-during-outage")
    journal = str(tmp_path / "journal")
    # Journaled as a worker would, but replayed by the server under test, not by this process.
    monkeypatch.setattr("gateway.settle_journal.replayer_start", lambda: None)
    with override_journal(journal):
        settle_journal_add(
            hold_id=answered.pk,
            amount=3 * C,
            description="gpt-4o",
            reference="answered-during-outage",
            usage=usage,
        )
    env = gateway_env(
        fake, SETTLE_JOURNAL_DIR=journal, CELERY_TASK_ALWAYS_EAGER="true", HOLD_EXPIRY_INTERVAL_SECONDS="1"
    )
    with live_uvicorn_process(env):
        deadline = time.monotonic() + 30
        while CreditHold.objects.filter(state="held").exists() and time.monotonic() < deadline:
            time.sleep(0.2)

    states = dict(CreditHold.objects.filter(pk__in=[abandoned.pk, answered.pk]).values_list("pk", "state"))
    assert states == {abandoned.pk: "expired", answered.pk: "settled"}
    assert balance_get(user=user) == {"balance": 97 * C, "held": 0, "available": 97 * C}
    from monitoring.models import UsageRecord

    assert UsageRecord.objects.get(request_id="answered-during-outage").credits == 3 * C
    assert not list((tmp_path / "journal").glob("*.json"))


@pytest.mark.django_db(transaction=True)
def test_a_replay_that_finds_its_hold_already_settled_records_what_that_settle_charged(
    user, tmp_path, monkeypatch
):
    """Two replays of one journaled settle at once (a process's own replayer and the expiry job, as a
    CI run met): the one that settles charges; the other finds the hold closed. Whichever writes the
    usage row first, the row says what the hold was charged, never 0."""
    from billing.services import hold_settle
    from gateway import settle_journal
    from monitoring.models import UsageRecord
    from tests.gateway.conftest import grant

    grant(user, 100)
    hold = _abandoned_hold(user, 7, "replayed-twice")
    usage = _usage(user, "replayed-twice")
    monkeypatch.setattr(settle_journal, "replayer_start", lambda: None)
    with override_journal(str(tmp_path)):
        settle_journal.settle_journal_add(
            hold_id=hold.pk, amount=3 * C, description="gpt-4o", reference="replayed-twice", usage=usage
        )
        # The other replay's settle committed; its usage row is not written yet.
        hold_settle(hold_id=hold.pk, amount=3 * C, description="gpt-4o", reference="replayed-twice")
        assert settle_journal.settles_replay() == 1

    row = UsageRecord.objects.get(request_id="replayed-twice")
    assert (row.credits, row.uncharged) == (3 * C, 0)
    assert settle_journal.settle_journal_pending() == []
