"""The billed gateway pipeline: credit check -> call -> charge -> usage record.

    response = await LLMGateway().invoke(LLMRequest(messages=[...]), user, api_key_id=key.id)
    stream = await LLMGateway().stream_open(LLMRequest(messages=[...], stream=True), user)
    async for delta in stream: ...      # then stream.response

Each call places a hold for its worst case (prompt upper bound + max_tokens at the dearest model of
the route) before any upstream is contacted, and settles it at the real cost afterwards, or releases
it on failure. Settling runs in `finally` and is shielded from cancellation, so a client that hangs
up mid-stream still pays for what was produced and no hold is left behind. No database transaction
is open while a provider is called: every DB step is its own short call (`gateway.db.run_db_step`), which
gives its pooled connection back as soon as it is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError

from billing.credits import usd_to_micro
from billing.services import hold_place, hold_release, hold_settle
from smartspec import metrics
from smartspec.errors import BACKING_SERVICE_DOWN, APIError, ServiceUnavailable, UpstreamError

from .aftercall import CallRecord, call_record, health_samples, health_samples_record
from .client import (
    LLMRequest,
    LLMResponse,
    Outcome,
    PreparedChat,
    answering_model_id,
    chat_prepare_sync,
    outcome_price_sync,
    response_build,
    result_output_bytes,
)
from .db import run_db_step
from .limits import KeyLimits, Reservation, limits_admit, limits_settle
from .pricing import RELAY_BYTES_PER_TOKEN, ResolvedUsage, image_count, output_bytes, worst_case_usd
from .providers import provider_stream
from .providers.base import StreamDelta
from .routing import Attempt, attempt_request, attempt_trial_claim, attempts_run, chain_failed
from .settle_journal import settle_journal_add

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Billing:
    """The money side of one call: its hold and what was finally charged (micro-credits)."""

    user: Any
    api_key_id: int | None
    hold_id: int | None = None
    hold_amount: int = 0
    charged: int = 0
    # What the answer cost beyond what was charged (the hold capped it): the operator's loss.
    uncharged: int = 0
    reservation: Reservation = field(default_factory=Reservation)


def _hold_amount(prepared: PreparedChat) -> int:
    usd = worst_case_usd(
        prices=prepared.plan.worst_prices(),
        prompt_tokens=prepared.prompt_bound,
        max_tokens=prepared.completion_bound,
        images=image_count(prepared.chat.messages),
    )
    return usd_to_micro(usd)


def _open_sync(
    request: LLMRequest,
    *,
    user,
    api_key_id: int | None,
    request_id: str | None,
    limits: KeyLimits | None = None,
    response_id: str = "",
) -> tuple[PreparedChat, Billing]:
    """Validate, route, admit under the key's limits and place the hold; nothing is spent if any fails."""
    try:
        prepared = chat_prepare_sync(request, request_id=request_id)
        prepared.response_id = response_id or ""
        metrics.call_model(prepared.plan.model)
        billing = Billing(user=user, api_key_id=api_key_id, hold_amount=_hold_amount(prepared))
        billing.reservation = limits_admit(
            limits=limits,
            tokens=prepared.prompt_bound + prepared.completion_bound,
            credits=billing.hold_amount,
        )
        try:
            if billing.hold_amount > 0:
                hold = hold_place(
                    user=user,
                    amount=billing.hold_amount,
                    request_id=prepared.request_id,
                    # A long stream must not outlive its hold (an expired hold can no longer be settled).
                    ttl_seconds=(
                        settings.STREAM_HOLD_TTL_SECONDS if request.stream else settings.CALL_HOLD_TTL_SECONDS
                    ),
                )
                billing.hold_id = hold.pk
                metrics.hold_placed(billing.hold_amount)
        except BaseException:
            # A call that never starts uses none of its key's allowance.
            limits_settle(reservation=billing.reservation, tokens=0, credits=0)
            raise
    except DatabaseError:
        # Fail closed: without the ledger no call may run.
        logger.exception("database unavailable while opening a call")
        raise ServiceUnavailable("The credit ledger is unavailable; try again shortly.")
    return prepared, billing


@dataclass(slots=True)
class OpenedCall:
    """A validated, routed call whose hold is placed: what `LLMGateway.invoke_opened` and
    `LLMGateway.stream_opened` run."""

    prepared: PreparedChat
    billing: Billing


def call_open_sync(
    request: LLMRequest,
    *,
    user,
    api_key_id: int | None = None,
    request_id: str | None = None,
    limits: KeyLimits | None = None,
    response_id: str = "",
) -> OpenedCall:
    """Validate, route, admit and hold (sync, one DB step): for a caller that opens the call in the
    same step as other work, e.g. the key's lookup. Streams need `request.stream` set. `response_id`
    is the face's own id of the answer (`resp_...`), so the receipt can be found by it."""
    prepared, billing = _open_sync(
        request,
        user=user,
        api_key_id=api_key_id,
        request_id=request_id,
        limits=limits,
        response_id=response_id,
    )
    return OpenedCall(prepared=prepared, billing=billing)


def _close_sync(
    *,
    prepared: PreparedChat,
    billing: Billing,
    priced: dict[str, Any] | None,
    attempts: list[Attempt],
    status: str,
    error_class: str = "",
    latency_ms: int,
    ttft_ms: int | None = None,
    stream: bool = False,
    truncated: bool = False,
    finish_reason: str | None = None,
) -> Outcome | None:
    """Price the answer (`priced`: the arguments of `outcome_price_sync`, None when nothing is to be
    billed), settle or release the hold, then hand the usage row and provider health to
    `gateway.aftercall`. One DB step; returns the outcome, `billing.charged` holds what was taken."""
    outcome = None
    try:
        if priced is not None:
            outcome = outcome_price_sync(prepared=prepared, **priced)
    except Exception as exc:
        # Unpriceable: release the hold (nothing is charged) and let the caller see the failure.
        status, error_class = "error", type(exc).__name__
        raise
    finally:
        journaled = _settle(prepared=prepared, billing=billing, outcome=outcome)
        record = _call_record(
            prepared=prepared,
            billing=billing,
            outcome=outcome,
            attempts=attempts,
            status=status,
            error_class=error_class,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            stream=stream,
            truncated=truncated,
            finish_reason=finish_reason,
        )
        metrics.call_observe(
            usage=record.usage, first_model=prepared.plan.model, journaled=journaled is not None
        )
        if journaled is None:
            call_record(record=record)
        else:
            # The usage row waits with its settle; provider health lives in the cache, not the database.
            settle_journal_add(**journaled, usage=record.usage)
            health_samples_record(record.health)
    return outcome


def _settle(*, prepared: PreparedChat, billing: Billing, outcome: Outcome | None) -> dict | None:
    """Charge the real cost against the hold (or release it), and shrink the key's reservation.

    With the database down the settle cannot commit: the hold stays open and the settle's arguments
    are returned to be journaled (`gateway.settle_journal`), charged as they will be on replay."""
    charged, journaled = 0, None
    amount = usd_to_micro(outcome.cost_usd) if outcome is not None else 0
    if billing.hold_id is not None:
        settle = {
            "hold_id": billing.hold_id,
            "amount": amount,
            "description": f"{outcome.model} via {outcome.provider}" if outcome is not None else "",
            "reference": prepared.request_id,
        }
        try:
            if amount > 0:
                entry = hold_settle(**settle)
                # Billing caps a charge at the hold (the call's worst case); report what it took.
                charged = -entry.amount if entry is not None else 0
            else:
                hold_release(hold_id=billing.hold_id)
        except BACKING_SERVICE_DOWN:
            # The open hold still reserves the charge: the replay takes exactly this.
            charged, journaled = min(amount, billing.hold_amount), settle
        except Exception:
            metrics.settle_failed()
            raise
    billing.charged = charged
    billing.uncharged = max(0, amount - charged) if billing.hold_id is not None else 0
    limits_settle(
        reservation=billing.reservation,
        tokens=outcome.usage.total_tokens if outcome else 0,
        credits=charged,
    )
    return journaled


def _call_record(
    *,
    prepared: PreparedChat,
    billing: Billing,
    outcome: Outcome | None,
    attempts: list[Attempt],
    status: str,
    error_class: str,
    latency_ms: int,
    ttft_ms: int | None,
    stream: bool,
    truncated: bool = False,
    finish_reason: str | None = None,
) -> CallRecord:
    output_tokens = outcome.usage.completion_tokens if outcome else 0
    resolved = outcome.usage if outcome else None
    usage = {
        "user_id": billing.user.pk,
        "api_key_id": billing.api_key_id,
        "request_id": prepared.request_id,
        "model": outcome.model if outcome else prepared.plan.model,
        "provider": outcome.provider if outcome else "",
        "task_type": prepared.plan.task_type,
        "route": prepared.plan.route,
        "prompt_tokens": outcome.usage.prompt_tokens if outcome else 0,
        "completion_tokens": output_tokens,
        "cost_usd": outcome.cost_usd if outcome else Decimal(0),
        "credits": billing.charged,
        "hold": billing.hold_amount,
        "latency_ms": latency_ms,
        "ttft_ms": ttft_ms,
        "attempts": prepared.plan.attempts_as_dicts(),
        "status": status,
        "error_class": error_class,
        "stream": stream,
        "usage_estimated": outcome.usage.estimated if outcome else False,
        "usage_capped": bool(outcome and outcome.usage.capped) or truncated or billing.uncharged > 0,
        "uncharged": billing.uncharged,
        "response_id": prepared.response_id,
        "upstream_id": outcome.upstream_id if outcome else "",
        "provider_name": outcome.provider_name if outcome else "",
        "finish_reason": finish_reason or "",
        "cached_tokens": resolved.cached_tokens if resolved else 0,
        "cache_write_5m_tokens": resolved.cache_write_5m_tokens if resolved else 0,
        "cache_write_1h_tokens": resolved.cache_write_1h_tokens if resolved else 0,
        "reasoning_tokens": resolved.reasoning_tokens if resolved else 0,
        "cost_lines": outcome.cost_lines_as_dicts() if outcome else [],
        "computed_cost_usd": outcome.computed_cost_usd if outcome else None,
        "upstream_cost_usd": resolved.upstream_cost if resolved else None,
        "cost_source": outcome.cost_source if outcome else "",
        "cache_discount_usd": outcome.cache_discount_usd if outcome else Decimal(0),
    }
    # A snapshot: the attempts are not read again once the record is queued.
    health = health_samples(attempts=attempts, output_tokens=output_tokens, caller=str(billing.user.pk))
    return CallRecord(usage=usage, health=health)


# The settles under way and the streams still open in this process: what a shutdown must finish.
_settling: set[asyncio.Future] = set()
_open_streams: weakref.WeakSet[GatewayStream] = weakref.WeakSet()
# The tasks running a billed call (waiting on its upstream, or relaying its stream).
_call_tasks: weakref.WeakSet[asyncio.Task] = weakref.WeakSet()


def _track_task() -> None:
    task = asyncio.current_task()
    if task is not None:
        _call_tasks.add(task)


def _abandon_sync(*, billing: Billing) -> None:
    """A call opened for a caller that went away before it got it: its hold and its key's allowance
    come back, as for a call that never started."""
    if billing.hold_id is not None:
        hold_release(hold_id=billing.hold_id)
        metrics.hold_abandoned(billing.hold_amount)
    limits_settle(reservation=billing.reservation, tokens=0, credits=0)


def call_abandon(opened: OpenedCall) -> None:
    """`on_dropped` of a DB step that opens a call (`gateway.db.run_db_step`): on the loop."""
    _settle_start(_abandon_sync, billing=opened.billing)


def _settle_start(func, **kwargs) -> asyncio.Future:
    """A sync DB step that runs to completion, and that a shutdown waits for (`calls_drain`)."""
    future = asyncio.ensure_future(run_db_step(func, must_run=True)(**kwargs))
    _settling.add(future)
    future.add_done_callback(_settling.discard)
    return future


async def _shielded(func, **kwargs):
    """Run a sync DB step to completion even if the awaiting task is being cancelled."""
    return await asyncio.shield(_settle_start(func, **kwargs))


async def calls_drain(*, timeout: float) -> int:
    """At shutdown: close every stream still open (each bills what it produced and releases the rest)
    and wait for every settle under way, up to `timeout` seconds. Returns how many were unfinished."""
    deadline = time.monotonic() + timeout
    unfinished: set[asyncio.Future] = set()
    running = [task for task in _call_tasks if not task.done()]
    logger.info(
        "shutdown: %s calls running, %s streams open, %s settles under way",
        len(running),
        len(_open_streams),
        len(_settling),
    )
    # A call still waiting on its upstream is cancelled: it settles for what it produced.
    for task in running:
        task.cancel("server shutting down")
    while True:
        closing = set()
        if not any(not task.done() for task in _call_tasks):
            # Streams nobody is relaying any more (their client is gone): closed here.
            closing = {asyncio.ensure_future(stream.aclose()) for stream in list(_open_streams)}
        pending = closing | _settling | {task for task in _call_tasks if not task.done()}
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            break
        done, unfinished = await asyncio.wait(pending, timeout=left)
        for task in done:
            if task in closing and not task.cancelled() and task.exception() is not None:
                logger.error("settling a call at shutdown failed", exc_info=task.exception())
        # A call that just settled may have started another step meanwhile: look again.
        await asyncio.sleep(0)
    if unfinished:
        logger.error("%s calls were still settling when the shutdown timeout ran out", len(unfinished))
    return len(unfinished)


class LLMGateway:
    """Credit check -> call -> deduction -> monitoring, for one caller."""

    async def invoke(
        self,
        request: LLMRequest | dict[str, Any],
        user,
        *,
        api_key_id: int | None = None,
        request_id: str | None = None,
        limits: KeyLimits | None = None,
        response_id: str = "",
    ) -> LLMResponse:
        if isinstance(request, dict):
            request = LLMRequest(**request)
        opened = await run_db_step(call_open_sync, on_dropped=call_abandon)(
            request,
            user=user,
            api_key_id=api_key_id,
            request_id=request_id,
            limits=limits,
            response_id=response_id,
        )
        return await self.invoke_opened(opened)

    async def invoke_opened(self, opened: OpenedCall) -> LLMResponse:
        """Run a call opened by `call_open_sync`: the upstream attempts, then the charge."""
        prepared, billing = opened.prepared, opened.billing
        _track_task()
        started = time.monotonic()
        priced: dict[str, Any] | None = None
        status, error_class = "error", ""
        try:
            result, attempt = await attempts_run(plan=prepared.plan, request=prepared.chat)
            priced = {
                "attempt": attempt,
                "reported_model": result.model,
                "usage": result.usage,
                "completion_bytes": result_output_bytes(result),
                "upstream_id": result.upstream_id,
                "provider_name": result.provider,
            }
            status = "ok"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except APIError as exc:
            error_class = type(exc).__name__
            raise
        finally:
            latency_ms = int((time.monotonic() - started) * 1000)
            outcome = await _shielded(
                _close_sync,
                prepared=prepared,
                billing=billing,
                priced=priced,
                attempts=prepared.plan.attempts,
                status=status,
                error_class=error_class,
                latency_ms=latency_ms,
                finish_reason=result.finish_reason if priced is not None else None,
            )
        return response_build(
            prepared=prepared,
            result=result,
            outcome=outcome,
            latency_ms=latency_ms,
            credits=billing.charged,
            text=result.content,
        )

    async def stream_open(
        self,
        request: LLMRequest | dict[str, Any],
        user,
        *,
        api_key_id: int | None = None,
        request_id: str | None = None,
        limits: KeyLimits | None = None,
        response_id: str = "",
    ) -> GatewayStream:
        """Hold credits and open the first attempt that yields a delta.

        Errors before the first delta are ordinary API errors (and fall back like non-streamed calls),
        so a caller can still answer them with a proper status code.
        """
        if isinstance(request, dict):
            request = LLMRequest(**request)
        request.stream = True
        opened = await run_db_step(call_open_sync, on_dropped=call_abandon)(
            request,
            user=user,
            api_key_id=api_key_id,
            request_id=request_id,
            limits=limits,
            response_id=response_id,
        )
        return await self.stream_opened(opened)

    async def stream_opened(self, opened: OpenedCall, *, keep_text: bool = True) -> GatewayStream:
        """`stream_open` for a call opened by `call_open_sync` (with `request.stream` set).
        `keep_text=False` for a face that relays the deltas and needs no final text."""
        stream = GatewayStream(prepared=opened.prepared, billing=opened.billing, keep_text=keep_text)
        try:
            await stream.start()
        except BaseException as exc:
            stream.status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            stream.error_class = type(exc).__name__
            await stream.aclose()
            raise
        return stream


@dataclass(eq=False)
class GatewayStream:
    """One billed streamed call: iterate it for `StreamDelta`s; `response` is set once it is closed."""

    prepared: PreparedChat
    billing: Billing
    attempt: Attempt | None = None
    response: LLMResponse | None = None
    # "ok" only once the upstream has finished and the caller has read it all.
    status: str = "cancelled"
    error_class: str = "ClientDisconnected"
    # The native API answers with the whole text at the end; other faces need only its size.
    keep_text: bool = True
    # The gateway cut the stream at `max_tokens` (the upstream went on past it).
    truncated: bool = False
    _upstream: AsyncIterator[StreamDelta] | None = None
    _first: StreamDelta | None = None
    _parts: list[str] = field(default_factory=list)
    _output_bytes: int = 0
    _output_chunks: int = 0
    _usage: Any = None
    _reported_model: str | None = None
    _upstream_id: str = ""
    _provider_name: str = ""
    _finish_reason: str | None = None
    _stop: dict[str, Any] | None = None
    _started: float = field(default_factory=time.monotonic)
    _ttft_ms: int | None = None
    _closed: bool = False
    _produced: bool = False

    def __post_init__(self) -> None:
        _open_streams.add(self)

    @property
    def model(self) -> str:
        return (
            answering_model_id(self.attempt, self._reported_model)
            if self.attempt
            else self.prepared.plan.model
        )

    @property
    def provider(self) -> str:
        return self.attempt.provider if self.attempt else ""

    def _fit(self, delta: StreamDelta) -> tuple[StreamDelta, int] | None:
        """The delta as far as `max_tokens` lets it through, with its output's size in bytes; None
        once the stream has reached it. Either way of reaching it marks the stream `truncated`.

        Every delta with output carries at least one token, and the bytes are bounded per token
        (`RELAY_BYTES_PER_TOKEN`), so an upstream that runs on is cut here, its connection closed,
        and the call billed for what was relayed (never beyond `max_tokens`)."""
        # Thinking is output too: it counts against max_tokens as Anthropic counts it.
        size = output_bytes(text=delta.content + delta.thinking, tool_calls=delta.tool_calls)
        if not size:
            return delta, 0
        bound = self.prepared.completion_bound
        room = bound * RELAY_BYTES_PER_TOKEN - self._output_bytes
        if self._output_chunks >= bound or room <= 0:
            self.truncated = True
            return None
        if size > room:
            self.truncated = True
            if delta.thinking:
                return None
            # Cut on a character boundary; a partial tool call would be broken JSON, so it goes.
            text = delta.content.encode()[:room].decode(errors="ignore")
            if not text:
                return None
            delta = StreamDelta(content=text, model=delta.model, provider=delta.provider)
            size = len(text.encode())
        return delta, size

    def _take(self, delta: StreamDelta, size: int) -> None:
        """Count a relayed delta (`size`: its output's bytes, from `_fit`)."""
        if delta.content or delta.tool_calls or delta.thinking:
            if self._ttft_ms is None:
                self._ttft_ms = int((time.monotonic() - self._started) * 1000)
            self._produced = True
            self._output_chunks += 1
            self._output_bytes += size
        if delta.content and self.keep_text:
            self._parts.append(delta.content)
        if delta.usage is not None:
            self._usage = delta.usage
        if delta.model:
            self._reported_model = delta.model
        if delta.upstream_id and not self._upstream_id:
            self._upstream_id = delta.upstream_id
        if delta.provider:
            self._provider_name = delta.provider
        if delta.finish_reason:
            self._finish_reason = delta.finish_reason
        if delta.stop is not None:
            self._stop = delta.stop

    def _cut(self) -> None:
        self._finish_reason = "length"
        logger.warning(
            "stream %s from %s went past max_tokens; cut and billed at most max_tokens",
            self.prepared.request_id,
            self.provider,
        )

    async def start(self) -> None:
        """Walk the route until an attempt yields its first delta (errors before it are retryable)."""
        _track_task()
        plan = self.prepared.plan
        for attempt in plan.runnable:
            if not plan.attempt_due(attempt):
                continue
            if attempt.trial and not await run_db_step(attempt_trial_claim)(attempt):
                continue
            begun = time.monotonic()
            upstream = provider_stream(attempt.config, attempt_request(attempt, self.prepared.chat))
            try:
                first = await anext(aiter(upstream))
            except StopAsyncIteration:
                # An empty stream is a malformed answer; try the next attempt.
                attempt.status, attempt.error_class = "error", "UpstreamUnavailable"
                attempt.latency_ms = int((time.monotonic() - begun) * 1000)
                continue
            except UpstreamError as exc:
                plan.attempt_failed(attempt, exc)
                attempt.latency_ms = int((time.monotonic() - begun) * 1000)
                await _aclose(upstream)
                if not exc.retryable:
                    raise
                continue
            attempt.status = "ok"
            attempt.latency_ms = int((time.monotonic() - begun) * 1000)
            self.attempt, self._upstream = plan.answered(attempt, first.model), upstream
            self._first, size = self._fit(first) or (StreamDelta(finish_reason="length"), 0)
            self._take(self._first, size)
            return
        raise chain_failed(self.prepared.plan)

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        _track_task()
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            if not self.truncated:
                async for delta in self._upstream:
                    fitted = self._fit(delta)
                    if fitted is not None:
                        self._take(*fitted)
                        yield fitted[0]
                    if self.truncated:
                        break
            if self.truncated:
                self._cut()
            self.status, self.error_class = "ok", ""
        except asyncio.CancelledError:
            self.status, self.error_class = "cancelled", "ClientDisconnected"
            raise
        except GeneratorExit:
            self.status, self.error_class = "cancelled", "ClientDisconnected"
            raise
        except UpstreamError as exc:
            # Broken after output started: no fallback (the client has part of an answer), bill what came.
            self.status, self.error_class = "error", type(exc).__name__
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Settle for what was produced (or release), once; safe to call from `finally` while cancelled."""
        if self._closed:
            return
        self._closed = True
        _open_streams.discard(self)
        if self._upstream is not None:
            await _aclose(self._upstream)
        latency_ms = int((time.monotonic() - self._started) * 1000)
        text = "".join(self._parts)
        priced = None
        if self.attempt is not None and (self._produced or (self.status == "ok" and self._usage is not None)):
            priced = {
                "attempt": self.attempt,
                "reported_model": self._reported_model,
                # A cut stream's upstream usage never came: what was relayed is estimated.
                "usage": None if self.truncated else self._usage,
                "completion_bytes": self._output_bytes,
                "upstream_id": self._upstream_id,
                "provider_name": self._provider_name,
            }
        attempts = self.prepared.plan.attempts
        if self.attempt is not None and self.status != "ok":
            self.attempt.status = "error" if self.status == "error" else "ok"
            self.attempt.error_class = self.error_class if self.status == "error" else ""
        outcome = await _shielded(
            _close_sync,
            prepared=self.prepared,
            billing=self.billing,
            priced=priced,
            attempts=attempts,
            status=self.status,
            error_class=self.error_class,
            latency_ms=latency_ms,
            ttft_ms=self._ttft_ms,
            stream=True,
            truncated=self.truncated,
            finish_reason=self._finish_reason,
        )
        if self.attempt is not None:
            # A stream that produced nothing is answered (and billed) as zero.
            outcome = outcome or Outcome(
                model=self.model,
                provider=self.provider,
                usage=ResolvedUsage(0, 0, None, False),
                cost_usd=Decimal(0),
            )
            self.response = response_build(
                prepared=self.prepared,
                result=None,
                outcome=outcome,
                latency_ms=latency_ms,
                credits=self.billing.charged,
                text=text,
            )
            self.response.finish_reason = self._finish_reason
            # A cut stream stopped at max_tokens, whatever the upstream would have said.
            self.response.stop = None if self.truncated else self._stop


async def _aclose(iterator) -> None:
    close = getattr(iterator, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # closing a broken upstream must not mask the real outcome
        logger.debug("closing an upstream stream failed", exc_info=True)
