"""Provider health from real traffic and from probes, over a rolling window.

Every attempt the gateway makes (and every probe) is one sample. Samples are kept
per provider and per provider+model in Redis when `REDIS_URL` is set, so every
worker and host shares them, else in Django's cache (local memory in the embedded
default). Probe samples live apart from traffic samples so a cheap list-models call
never inflates a provider's real success rate. Beside the samples, a small state per
provider (and provider+model) counts consecutive outcomes: a provider is marked down
after `HEALTH_DOWN_AFTER` failures in a row and up again after `HEALTH_UP_AFTER`
successes in a row, probes included, so a provider that was marked down comes back
without waiting for traffic.

The same state is the circuit breaker: a provider marked down is *open* (no traffic)
for `CIRCUIT_COOLDOWN_SECONDS` after its latest failure, then *half-open*: one trial
call at a time is let through (claimed with an atomic add that expires), until
`HEALTH_UP_AFTER` successes close it again; a failed trial re-opens it. Routing asks
`circuit_states()` before it plans a call, so a dead provider costs one timeout per
cooldown, not one per request.

One caller cannot take a provider away from the others: a run of failures marks it down
only once they came from at least `CIRCUIT_MIN_CALLERS` different callers (each probe counts
as a caller of its own), since one caller's own requests (huge prompts, slow tools) can
fail again and again while the provider serves everyone else.

The monitor is advisory: a storage failure is logged and read as "no data"
(healthy), never raised into the caller's request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_SEP = "|"

CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN = "closed", "open", "half_open"

# One attempt's sample, written atomically in one command: pushed on each of its sample lists (capped,
# with their expiry), each state hash updated (consecutive counters, the down flag, last error and
# probe time), the provider's half-open trial ended and the index of members refreshed.
# KEYS: the sample lists, the state hashes, the trial keys, then the index. ARGV: the three counts,
# the sample, maxlen, ttl, ok, down_after, up_after, error, ts, probe, caller, min_callers, then the
# members (the order `_RedisStore._queue` sends them in).
_SAMPLE_LUA = """
local nsample, nstate, ntrial = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local payload, maxlen, ttl = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local ok, down_after, up_after = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local err, ts, probe, caller, min_callers = ARGV[10], ARGV[11], ARGV[12], ARGV[13], tonumber(ARGV[14])
local first_member = 15

local function update_state(k)
  if ok == 1 then
    redis.call('HSET', k, 'fails', 0)
    local oks = redis.call('HINCRBY', k, 'oks', 1)
    if redis.call('HGET', k, 'down') == '1' and oks >= up_after then
      redis.call('HSET', k, 'down', 0, 'up_at', ts)
    end
    redis.call('HDEL', k, 'fail_callers', 'ncallers')
  else
    redis.call('HSET', k, 'oks', 0, 'last_error', err, 'last_error_at', ts)
    local fails = redis.call('HINCRBY', k, 'fails', 1)
    local callers = redis.call('HGET', k, 'fail_callers') or ','
    local ncallers = tonumber(redis.call('HGET', k, 'ncallers') or '0')
    if ncallers < min_callers and not string.find(callers, ',' .. caller .. ',', 1, true) then
      redis.call('HSET', k, 'fail_callers', callers .. caller .. ',')
      ncallers = redis.call('HINCRBY', k, 'ncallers', 1)
    end
    if fails >= down_after and ncallers >= min_callers then
      redis.call('HSET', k, 'down', 1)
    end
  end
  if probe == '1' then
    redis.call('HSET', k, 'last_probe_at', ts, 'probe_ok', ok)
  end
  redis.call('EXPIRE', k, ttl)
end

for i = 1, nsample do
  redis.call('LPUSH', KEYS[i], payload)
  redis.call('LTRIM', KEYS[i], 0, maxlen - 1)
  redis.call('EXPIRE', KEYS[i], ttl)
end
for i = nsample + 1, nsample + nstate do
  update_state(KEYS[i])
end
for i = nsample + nstate + 1, nsample + nstate + ntrial do
  redis.call('DEL', KEYS[i])
end
local idx = KEYS[nsample + nstate + ntrial + 1]
for i = first_member, #ARGV do
  redis.call('SADD', idx, ARGV[i])
end
redis.call('EXPIRE', idx, ttl)
return 1
"""


def _next_state(
    state: dict,
    *,
    ok: bool,
    error_class: str,
    ts: float,
    probe: bool,
    down_after: int,
    up_after: int,
    caller: str = "",
    min_callers: int = 1,
) -> dict:
    """The same transition as `_SAMPLE_LUA`'s state update, for the cache store."""
    state = dict(state)
    if ok:
        state["fails"] = 0
        state["oks"] = int(state.get("oks", 0)) + 1
        state.pop("fail_callers", None)
        if state.get("down") and state["oks"] >= up_after:
            state.update(down=False, up_at=ts)
    else:
        state.update(oks=0, last_error=error_class, last_error_at=ts)
        state["fails"] = int(state.get("fails", 0)) + 1
        callers = set(state.get("fail_callers") or ())
        if len(callers) < min_callers:
            callers.add(caller)
        state["fail_callers"] = sorted(callers)
        if state["fails"] >= down_after and len(callers) >= min_callers:
            state["down"] = True
    if probe:
        state.update(last_probe_at=ts, probe_ok=ok)
    return state


class _CacheStore:
    """Samples and states in Django's cache; read-modify-write, fine for one process."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def write(
        self,
        *,
        sample_keys,
        state_keys,
        members,
        sample,
        ok,
        error_class,
        ts,
        probe,
        maxlen,
        ttl,
        down_after,
        up_after,
        trial_keys,
        caller="",
        min_callers=1,
    ) -> None:
        for key in sample_keys:
            samples = cache.get(key) or []
            samples.insert(0, sample)
            cache.set(key, samples[:maxlen], ttl)
        for key in state_keys:
            state = _next_state(
                cache.get(key) or {},
                ok=ok,
                error_class=error_class,
                ts=ts,
                probe=probe,
                down_after=down_after,
                up_after=up_after,
                caller=caller,
                min_callers=min_callers,
            )
            cache.set(key, state, ttl)
        # A finished call ends the provider's half-open trial, whichever way it went.
        cache.delete_many(trial_keys)
        index_key = f"{self.prefix}:idx"
        index = set(cache.get(index_key) or ())
        if not set(members) <= index:
            cache.set(index_key, sorted(index | set(members)), ttl)

    def write_many(self, writes: list[dict]) -> None:
        for write in writes:
            self.write(**write)

    def read(self, *, sample_keys, state_keys) -> tuple[dict[str, list], dict[str, dict]]:
        found = cache.get_many([*sample_keys, *state_keys])
        return ({k: found.get(k) or [] for k in sample_keys}, {k: found.get(k) or {} for k in state_keys})

    def members(self) -> list[str]:
        return list(cache.get(f"{self.prefix}:idx") or ())

    def claim(self, key: str, ttl: int) -> bool:
        return cache.add(key, 1, ttl)

    def clear(self) -> None:
        # Only used by tests; locmem has no prefix scan, so forget the index and what it names.
        for member in self.members():
            provider = member.partition(_SEP)[0]
            cache.delete_many(
                [
                    f"{self.prefix}:t:{member}",
                    f"{self.prefix}:s:{member}",
                    f"{self.prefix}:p:{provider}",
                    f"{self.prefix}:trial:{provider}",
                ]
            )
        cache.delete(f"{self.prefix}:idx")


_redis_clients: dict[str, Any] = {}
_sample_scripts: dict[str, Any] = {}

# Provider state hashes a caller read ahead in another round trip to the same Redis (the API key's
# cache read): {key: raw fields}, served to this request's circuit reads instead of a round trip.
_primed_states: contextvars.ContextVar[dict[str, dict] | None] = contextvars.ContextVar(
    "health_primed_states", default=None
)


def circuit_read_ahead_keys(providers: Iterable[str]) -> list[str]:
    """The Redis hashes that the circuit breaker of `providers` reads, for a caller that reads them
    ahead with its own cache round trip (`circuits_prime`). Empty when health does not live in the
    cache's Redis (the embedded default keeps it in Django's cache, with no round trip to save)."""
    if not settings.REDIS_URL:
        return []
    return [_state_key(settings.HEALTH_KEY_PREFIX, _member(p, None)) for p in dict.fromkeys(providers)]


def circuits_prime(states: dict[str, dict]) -> contextvars.Token:
    """Serve these state hashes (read ahead; key -> raw fields) to this request's circuit reads; give
    the token to `circuits_unprime` when the request is done."""
    return _primed_states.set(states)


def circuits_unprime(token: contextvars.Token) -> None:
    _primed_states.reset(token)


def _member(provider: str, model: str | None) -> str:
    return f"{provider}{_SEP}{model or ''}"


def _state_key(prefix: str, member: str) -> str:
    return f"{prefix}:s:{member}"


class _RedisStore:
    """Samples in capped Redis lists, states in hashes updated by one Lua script; one round trip each way."""

    def __init__(self, prefix: str, url: str):
        import redis

        self.prefix = prefix
        client = _redis_clients.get(url)
        if client is None:
            # Short timeouts: health is consulted on the hot path and must not stall it.
            client = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
            )
            _redis_clients[url] = client
            # Registered once per client: each registration hashes the script again.
            _sample_scripts[url] = client.register_script(_SAMPLE_LUA)
        self.client = client
        self.sample_script = _sample_scripts[url]

    def write(self, **write) -> None:
        self.write_many([write])

    def write_many(self, writes: list[dict]) -> None:
        """Every sample of `writes` (the keyword arguments of `write`) in one pipeline, in order.

        The script is called by its hash alone (redis-py's Script object would first ask SCRIPT
        EXISTS, a round trip per batch); a Redis that lost it (a restart, SCRIPT FLUSH) refuses every
        call of the batch, which is then sent again once the script is loaded."""
        from redis.exceptions import NoScriptError

        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for write in writes:
                self._queue(pipe, **write)
            try:
                pipe.execute()
                return
            except NoScriptError:
                if attempt:
                    raise
                self.client.script_load(_SAMPLE_LUA)

    def _queue(
        self,
        pipe,
        *,
        sample_keys,
        state_keys,
        members,
        sample,
        ok,
        error_class,
        ts,
        probe,
        maxlen,
        ttl,
        down_after,
        up_after,
        trial_keys,
        caller="",
        min_callers=1,
    ) -> None:
        keys = [*sample_keys, *state_keys, *trial_keys, f"{self.prefix}:idx"]
        pipe.evalsha(
            self.sample_script.sha,
            len(keys),
            *keys,
            len(sample_keys),
            len(state_keys),
            len(trial_keys),
            json.dumps(sample, separators=(",", ":")),
            maxlen,
            ttl,
            1 if ok else 0,
            down_after,
            up_after,
            error_class,
            ts,
            1 if probe else 0,
            caller.replace(",", "") or "-",
            min_callers,
            *members,
        )

    def read(self, *, sample_keys, state_keys) -> tuple[dict[str, list], dict[str, dict]]:
        primed = _primed_states.get()
        if not sample_keys and primed is not None and all(key in primed for key in state_keys):
            out = [primed[key] for key in state_keys]
        elif not sample_keys and len(state_keys) == 1:
            # The circuit breaker's read for a one-provider route, on every call: no pipeline.
            out = [self.client.hgetall(state_keys[0])]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key in sample_keys:
                pipe.lrange(key, 0, -1)
            for key in state_keys:
                pipe.hgetall(key)
            out = pipe.execute()
        samples = {k: [json.loads(raw) for raw in out[i]] for i, k in enumerate(sample_keys)}
        states = {}
        for i, key in enumerate(state_keys):
            raw = {f.decode(): v.decode() for f, v in out[len(sample_keys) + i].items()}
            states[key] = _decode_state(raw)
        return samples, states

    def members(self) -> list[str]:
        return [m.decode() for m in self.client.smembers(f"{self.prefix}:idx")]

    def claim(self, key: str, ttl: int) -> bool:
        return bool(self.client.set(key, 1, nx=True, ex=ttl))

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=500))
        if keys:
            self.client.delete(*keys)


def _decode_state(raw: dict[str, str]) -> dict:
    state: dict[str, Any] = {}
    for name in ("fails", "oks"):
        if name in raw:
            state[name] = int(raw[name])
    if "down" in raw:
        state["down"] = raw["down"] == "1"
    for name in ("last_error_at", "last_probe_at", "up_at"):
        if raw.get(name):
            state[name] = float(raw[name])
    if "last_error" in raw:
        state["last_error"] = raw["last_error"]
    if "probe_ok" in raw:
        state["probe_ok"] = raw["probe_ok"] == "1"
    return state


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


class ProviderHealthMonitor:
    """Records attempts and answers "is this provider healthy, how fast is it" from the shared store."""

    def __init__(self, *, store: Any = None, now: Callable[[], float] = time.time):
        prefix = settings.HEALTH_KEY_PREFIX
        if store is None:
            store = _RedisStore(prefix, settings.REDIS_URL) if settings.REDIS_URL else _CacheStore(prefix)
        self.store = store
        self.now = now
        self.window_seconds = settings.HEALTH_WINDOW_SECONDS
        self.window_size = settings.HEALTH_WINDOW_SIZE
        self.down_after = settings.HEALTH_DOWN_AFTER
        self.up_after = settings.HEALTH_UP_AFTER
        self.min_callers = max(1, settings.CIRCUIT_MIN_CALLERS)
        self.min_samples = settings.HEALTH_MIN_SAMPLES
        self.cooldown = settings.CIRCUIT_COOLDOWN_SECONDS
        # A trial call may take as long as any upstream call may.
        self.trial_seconds = settings.UPSTREAM_CONNECT_TIMEOUT + settings.UPSTREAM_READ_TIMEOUT

    # --- keys -----------------------------------------------------------------
    def _member(self, provider: str, model: str | None) -> str:
        return _member(provider, model)

    def _traffic_key(self, provider: str, model: str | None) -> str:
        return f"{self.store.prefix}:t:{self._member(provider, model)}"

    def _state_key(self, provider: str, model: str | None) -> str:
        return _state_key(self.store.prefix, self._member(provider, model))

    def _probe_key(self, provider: str) -> str:
        return f"{self.store.prefix}:p:{provider}"

    def _trial_key(self, provider: str) -> str:
        return f"{self.store.prefix}:trial:{provider}"

    # --- writes ---------------------------------------------------------------
    def record_attempt(self, **attempt: Any) -> None:
        """One attempt's outcome (provider, model, ok, latency_ms, and optionally output_tokens,
        error_class, probe, caller: the keywords of `_write_args`). Probes count toward up/down but
        never toward traffic rates. `caller` (the user a call was for) tells failures of several
        callers from one caller's."""
        self.record_attempts([attempt])

    def record_attempts(self, attempts: Iterable[dict]) -> None:
        """Several outcomes (each the keyword arguments of `record_attempt`), written in one round trip."""
        writes = [self._write_args(**attempt) for attempt in attempts]
        if not writes:
            return
        try:
            self.store.write_many(writes)
        except Exception as exc:  # advisory data: never fail the caller's request over it
            logger.warning("provider health write failed: %s", type(exc).__name__)

    def _write_args(
        self,
        *,
        provider: str,
        model: str,
        ok: bool,
        latency_ms: int,
        output_tokens: int = 0,
        error_class: str = "",
        probe: bool = False,
        caller: str = "",
    ) -> dict:
        ts = self.now()
        sample = [
            round(ts, 3),
            1 if ok else 0,
            max(0, int(latency_ms)),
            max(0, int(output_tokens)),
            error_class[:100],
        ]
        if probe:
            sample_keys = [self._probe_key(provider)]
            state_keys = [self._state_key(provider, None)]
            members = [self._member(provider, None)]
        else:
            sample_keys = [self._traffic_key(provider, None)]
            state_keys = [self._state_key(provider, None)]
            members = [self._member(provider, None)]
            if model:
                sample_keys.append(self._traffic_key(provider, model))
                state_keys.append(self._state_key(provider, model))
                members.append(self._member(provider, model))
        return {
            "sample_keys": sample_keys,
            "state_keys": state_keys,
            "members": members,
            "sample": sample,
            "ok": ok,
            "error_class": error_class[:100],
            "ts": ts,
            "probe": probe,
            "maxlen": self.window_size,
            "ttl": max(self.window_seconds * 4, 3600),
            "down_after": self.down_after,
            "up_after": self.up_after,
            "trial_keys": [] if probe else [self._trial_key(provider)],
            # Each probe is evidence of its own; a half-open trial's failure re-opens at once.
            "caller": f"probe:{ts}" if probe else (caller or "-"),
            "min_callers": self.min_callers,
        }

    # --- reads ----------------------------------------------------------------
    def _read(self, pairs: Iterable[tuple[str, str | None]]) -> tuple[dict, dict]:
        sample_keys, state_keys = [], []
        for provider, model in pairs:
            sample_keys.append(self._traffic_key(provider, model))
            state_keys.append(self._state_key(provider, model))
            if not model:
                sample_keys.append(self._probe_key(provider))
        try:
            return self.store.read(sample_keys=sample_keys, state_keys=state_keys)
        except Exception as exc:
            logger.warning("provider health read failed: %s", type(exc).__name__)
            return {k: [] for k in sample_keys}, {k: {} for k in state_keys}

    def _in_window(self, samples: list) -> list:
        cutoff = self.now() - self.window_seconds
        return [s for s in samples if s[0] >= cutoff]

    def _figures(self, samples: list) -> dict:
        recent = self._in_window(samples)
        ok_samples = [s for s in recent if s[1]]
        latencies = [s[2] for s in ok_samples]
        token_samples = [s for s in ok_samples if s[3] > 0 and s[2] > 0]
        seconds = sum(s[2] for s in token_samples) / 1000
        return {
            "requests": len(recent),
            "failures": len(recent) - len(ok_samples),
            "success_rate": (len(ok_samples) / len(recent)) if recent else None,
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
            "throughput_tps": (sum(s[3] for s in token_samples) / seconds) if seconds else None,
        }

    def _healthy(
        self, samples: list, provider_state: dict, model_state: dict | None, min_success_rate: float
    ) -> bool:
        if provider_state.get("down"):
            return False
        provider_up_at = provider_state.get("up_at") or 0
        # A provider that came back up (probes included) clears a model's down mark set before it.
        if (
            model_state
            and model_state.get("down")
            and (model_state.get("last_error_at") or 0) > provider_up_at
        ):
            return False
        # Failures from before the provider (or model) came back up are not held against it.
        up_at = max(provider_up_at, (model_state or {}).get("up_at") or 0)
        recent = [s for s in self._in_window(samples) if s[0] > up_at]
        if len(recent) < self.min_samples:
            return True
        return sum(1 for s in recent if s[1]) / len(recent) >= min_success_rate

    def is_provider_healthy(
        self, provider: str, model: str | None = None, min_success_rate: float = 0.9
    ) -> bool:
        """False when the provider (or this model on it) is marked down, or when its real-traffic
        success rate in the window is below `min_success_rate` over enough samples."""
        pairs = [(provider, None)] + ([(provider, model)] if model else [])
        samples, states = self._read(pairs)
        return self._healthy(
            samples[self._traffic_key(provider, model)],
            states[self._state_key(provider, None)],
            states[self._state_key(provider, model)] if model else None,
            min_success_rate,
        )

    def measured(self, provider: str, model: str | None = None) -> dict:
        """Real-traffic latency p50, throughput and success rate in the window (None when unknown)."""
        samples, _ = self._read([(provider, model)])
        figures = self._figures(samples[self._traffic_key(provider, model)])
        return {k: figures[k] for k in ("latency_p50_ms", "throughput_tps", "success_rate")}

    def _open_until(self, state: dict) -> float | None:
        """While marked down, the breaker stays open until the cooldown after its latest failure."""
        if not state.get("down"):
            return None
        return (state.get("last_error_at") or 0) + self.cooldown

    def _circuit(self, state: dict) -> str:
        open_until = self._open_until(state)
        if open_until is None:
            return CIRCUIT_CLOSED
        return CIRCUIT_OPEN if self.now() < open_until else CIRCUIT_HALF_OPEN

    def circuit_states(self, providers: Iterable[str], *, claim_trials: bool = True) -> dict[str, str]:
        """Each provider's breaker: closed, open, or half_open (this caller holds its one trial call).

        A half-open provider whose trial another call already holds reads as open. Unlike the other
        reads this raises when the store is unreachable: the caller must fail closed, not guess.
        """
        providers = list(dict.fromkeys(providers))
        if not providers:
            return {}
        _, states = self.store.read(sample_keys=[], state_keys=[self._state_key(p, None) for p in providers])
        circuits = {p: self._circuit(states[self._state_key(p, None)]) for p in providers}
        for provider, circuit in circuits.items():
            # The claim lapses on its own if the trial's worker dies before recording an outcome.
            if (
                circuit == CIRCUIT_HALF_OPEN
                and claim_trials
                and not self.store.claim(self._trial_key(provider), int(self.trial_seconds) + 1)
            ):
                circuits[provider] = CIRCUIT_OPEN
        return circuits

    def get_all_provider_health(self) -> list[dict]:
        """One row per provider (model None) and per provider+model seen in the window."""
        try:
            members = sorted(self.store.members())
        except Exception as exc:
            logger.warning("provider health read failed: %s", type(exc).__name__)
            return []
        pairs = [(m.partition(_SEP)[0], m.partition(_SEP)[2] or None) for m in members]
        samples, states = self._read(pairs)
        rows = []
        for provider, model in pairs:
            traffic = samples[self._traffic_key(provider, model)]
            state = states[self._state_key(provider, model)]
            provider_state = states.get(self._state_key(provider, None)) or {}
            row = {
                "provider": provider,
                "model": model,
                **self._figures(traffic),
                "healthy": self._healthy(
                    traffic, provider_state if model else state, state if model else None, 0.9
                ),
                "down": bool(state.get("down")),
                "consecutive_failures": int(state.get("fails", 0)),
                "circuit": self._circuit(state) if not model else None,
                "circuit_open_until": self._open_until(state) if not model else None,
                "last_error": state.get("last_error", ""),
                "last_error_at": state.get("last_error_at"),
                "last_probe_at": None,
                "probe_ok": None,
                "probe_latency_ms": None,
            }
            if not model:
                probes = samples.get(self._probe_key(provider)) or []
                if probes:
                    row.update(
                        last_probe_at=probes[0][0], probe_ok=bool(probes[0][1]), probe_latency_ms=probes[0][2]
                    )
            rows.append(row)
        return rows

    def clear(self) -> None:
        """Forget everything (tests and operators resetting a store)."""
        self.store.clear()
