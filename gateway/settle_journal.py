"""Settles that could not commit: kept on disk until they do, so no answered call goes unbilled.

A call's hold is placed before its upstream is asked; its settle runs after the answer. When the
database goes down in between, the answer is already there (the client gets it) and the hold is still
open in the database: the settle itself is what must not be lost. It is written here instead, one
fsynced file per hold under `SETTLE_JOURNAL_DIR`, and replayed, with its usage row, as soon as the
database answers again:

- by a thread of the process that journaled it, retrying with backoff (1 s doubling to 30 s);
- by every process of the host at start-up, and by the hold-expiry job before it expires anything.

While a settle waits here its hold is never expired: the expiry job replays first and skips any hold
still journaled (on this host's disk, or, with several hosts, marked in the shared cache). A replay is
idempotent: `hold_settle` on a closed hold charges nothing, and the usage row is keyed on its request
id. The charge is what the settle would have taken: at most the hold, which still reserves it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import Error as DatabaseError

from billing.selectors import hold_charged_get
from billing.services import hold_release, hold_settle, holds_expire
from smartspec import metrics

from .db import connection_release

logger = logging.getLogger(__name__)

# How long the shared cache vouches for a hold journaled on some host (a host gone for good must not
# keep a hold from expiring forever).
PENDING_MARK_SECONDS = 7 * 24 * 3600


def _pending_key(hold_id: int) -> str:
    return f"{settings.SETTLE_PENDING_KEY_PREFIX}:{hold_id}"


_replayer: threading.Thread | None = None
_replayer_lock = threading.Lock()
_wake = threading.Event()


def _dir() -> Path:
    path = Path(settings.SETTLE_JOURNAL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def settle_journal_add(
    *, hold_id: int, amount: int, description: str, reference: str, usage: dict[str, Any]
) -> None:
    """Keep one settle durably (the file is fsynced before this returns) and start its replays."""
    entry = {
        "hold_id": hold_id,
        "amount": amount,
        "description": description,
        "reference": reference,
        "usage": usage,
    }
    folder = _dir()
    tmp = folder / f".{hold_id}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(entry, handle, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / f"{hold_id}.json")
    try:
        cache.set(_pending_key(hold_id), 1, PENDING_MARK_SECONDS)
    except Exception:  # this host's file still protects the hold from this host's expiry job
        logger.warning("could not mark hold %s as pending in the shared cache", hold_id)
    logger.error("settle of hold %s journaled: the database is unavailable; it will be replayed", hold_id)
    replayer_start()


def settle_journal_pending() -> list[int]:
    """Hold ids with a settle waiting on this host."""
    try:
        return sorted(int(p.stem) for p in _dir().glob("*.json") if p.stem.isdigit())
    except OSError:
        return []


def settle_journal_marked(hold_ids: list[int]) -> set[int]:
    """Of `hold_ids`, those with a settle waiting on this host or (shared cache) on any host."""
    pending = set(settle_journal_pending()) & set(hold_ids)
    try:
        marks = cache.get_many([_pending_key(h) for h in hold_ids])
        pending |= {h for h in hold_ids if _pending_key(h) in marks}
    except Exception:
        logger.warning("could not read pending settles from the shared cache")
    return pending


def _replay_one(path: Path) -> None:
    from monitoring.services import usage_record_create

    entry = json.loads(path.read_text())
    hold_id, amount = int(entry["hold_id"]), int(entry["amount"])
    charged = 0
    try:
        if amount > 0:
            ledger = hold_settle(
                hold_id=hold_id, amount=amount, description=entry["description"], reference=entry["reference"]
            )
            # None: the hold was closed already, by another replay of this entry (another process of
            # this host, or the expiry job) or by a replay that died before its usage row. The row
            # then says what that settle charged, whichever replay writes it first.
            charged = -ledger.amount if ledger is not None else hold_charged_get(hold_id=hold_id)
        else:
            hold_release(hold_id=hold_id)
    except ValueError:
        # The hold itself was lost (a PostgreSQL crash before its WAL reached disk): nothing to charge.
        logger.error("journaled settle of hold %s found no hold: the call stays unbilled", hold_id)
    usage = {
        **entry["usage"],
        "credits": charged,
        "uncharged": max(0, amount - charged),
        "cost_usd": Decimal(str(entry["usage"].get("cost_usd") or 0)),
    }
    # Keyed on (user, request id): a replay that ran before and died here writes no second row.
    usage_record_create(**usage)
    path.unlink()  # FileNotFoundError: another replay of this entry took it out first (not counted)
    try:
        cache.delete(_pending_key(hold_id))
    except Exception:
        logger.warning("could not clear the pending mark of hold %s", hold_id)
    metrics.settle_replayed()
    logger.warning("journaled settle of hold %s replayed: %s micro-credits charged", hold_id, charged)


def settles_replay() -> int:
    """Replay every settle waiting on this host; returns how many committed. Stops at the first
    database error (the rest wait for the next try)."""
    done = 0
    for path in sorted(_dir().glob("*.json")):
        try:
            _replay_one(path)
            done += 1
        except FileNotFoundError:
            continue  # another process of this host replayed it meanwhile
        except DatabaseError:
            logger.warning("replaying journaled settles: the database is still unavailable")
            break
        finally:
            connection_release(pooled_thread=True)
    return done


def holds_expire_after_replay() -> dict:
    """The expiry job: replay this host's journaled settles, then expire stale holds, never one whose
    settle is still journaled (here or, through the shared cache, on another host)."""
    replayed = settles_replay()
    expired = holds_expire(keep=settle_journal_marked)
    return {"replayed": replayed, "expired": expired}


def _replay_until_empty() -> None:
    global _replayer
    delay = 1.0
    while True:
        try:
            settles_replay()
        except Exception:
            logger.exception("replaying journaled settles failed")
        with _replayer_lock:
            if not settle_journal_pending():
                _replayer = None
                return
        _wake.wait(delay)
        _wake.clear()
        delay = min(delay * 2, 30.0)


def replayer_start() -> None:
    global _replayer
    with _replayer_lock:
        if _replayer is not None and _replayer.is_alive():
            _wake.set()
            return
        _replayer = threading.Thread(target=_replay_until_empty, name="settle-replay", daemon=True)
        _replayer.start()


def settle_journal_wait(timeout: float) -> bool:
    """Wait (at shutdown) for this process's replays to finish; True when nothing is left waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        thread = _replayer
        if thread is None or not thread.is_alive():
            break
        _wake.set()
        thread.join(0.2)
    return not settle_journal_pending()
