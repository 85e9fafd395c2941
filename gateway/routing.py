"""Routing: which model answers a call and through which providers, in which order.

`route_plan` (sync, reads the catalog and the matrix) turns the caller's options into an ordered list
of attempts: for each of [model, *fallback_models], OpenRouter first (when enabled and allowed), then
the model's direct providers; attempts that a price cap or a privacy demand rules out are kept as
`skipped` with the reason, so the caller can see why. A provider whose circuit breaker is open (it kept
failing; see monitoring.health) is skipped the same way until its cooldown ends; once half-open, one
call claims the trial attempt. `attempts_run` (async) walks the plan, moving on only after a retryable
upstream failure.

Model lifecycle (gateway.catalog): a matrix cell on a retired model routes to its successor chain and
`RoutePlan.reason` says so; an explicit retired model is a 404 naming its successor unless the caller
listed fallbacks (then it is skipped). For an automatic choice the successor of the chosen model also
stands by: when an upstream answers "no such model" (`UpstreamModelGone`) for the chosen model, the call
moves to the successor within the same call. Standby attempts are priced into the hold like any other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings

from smartspec.errors import (
    InvalidRequest,
    ModelNotFound,
    ModelRetired,
    ServiceUnavailable,
    UpstreamError,
    UpstreamModelGone,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from smartspec.jsonbody import lenient_number

from .aftercall import OPENROUTER_FALLBACK
from .catalog import (
    OLLAMA_PREFIX,
    OPENROUTER,
    CatalogModel,
    catalog_aliases_resolve,
    catalog_models_get,
    catalog_retired_error,
    catalog_successor_chain,
)
from .db import run_db_step
from .models import ModelCatalogEntry, RoutingRule
from .pricing import WorstPrices
from .providers import direct_provider_for, native_messages_adapter, provider_call, provider_configs
from .providers.base import ChatRequest, ChatResult, ProviderConfig
from .providers.embeddings import can_embed
from .providers.params import params_fit

logger = logging.getLogger(__name__)

TASK_TYPES = tuple(RoutingRule.TaskType.values)
BUDGET_PRIORITIES = tuple(RoutingRule.BudgetPriority.values)
SORTS = ("price", "throughput", "latency")
DATA_COLLECTION = ("allow", "deny")
# A request that names neither a model nor a task type is routed as the cheapest kind of work.
DEFAULT_TASK_TYPE = "simple"
AUTO_MODEL = "auto"
DEMO = "demo"
MAX_FALLBACK_MODELS = 10
# Direct providers whose model names are the catalog id minus its vendor (openai/gpt-4o -> gpt-4o),
# so a model the catalog maps to no direct provider (e.g. one added by the sync) can still use them.
SAME_NAME_PROVIDERS = ("openai", "google", "zai")
PER_1K = Decimal(1000)
PER_MILLION = Decimal(1_000_000)


@dataclass(slots=True)
class RouteOptions:
    """The routing part of a call, already validated (see `route_options_validate`)."""

    model: str | None = None
    task_type: str | None = None
    budget_priority: str = "balanced"
    fallback_models: list[str] = field(default_factory=list)
    use_openrouter: bool = True
    sort: str | None = None
    data_collection: str = "allow"
    zdr: bool | None = None
    max_price: dict[str, Decimal] | None = None  # USD per 1K tokens: {"prompt", "completion"}
    require_parameters: bool | None = None  # OpenRouter: only upstreams that support every parameter

    @property
    def private(self) -> bool:
        """The caller asked for zero retention or no training on its data."""
        return bool(self.zdr) or self.data_collection == "deny"


# No model costs anywhere near this per 1K tokens; a cap above it is "no cap" and would only
# overflow the price arithmetic ("1e999999999").
MAX_PRICE_CAP_USD_PER_1K = Decimal(1_000_000)


def _price_per_1k(value: Any, name: str) -> Decimal:
    if lenient_number(value) or not isinstance(value, int | float | str | Decimal):
        raise InvalidRequest(f"max_price.{name} must be a number (USD per 1K tokens).")
    if isinstance(value, str) and len(value) > 64:
        raise InvalidRequest(f"max_price.{name} must be a number (USD per 1K tokens).")
    try:
        price = Decimal(str(value).strip())
    except ArithmeticError:
        raise InvalidRequest(f"max_price.{name} must be a number (USD per 1K tokens).")
    if not price.is_finite() or price < 0:
        raise InvalidRequest(f"max_price.{name} must be a non-negative number (USD per 1K tokens).")
    if price > MAX_PRICE_CAP_USD_PER_1K:
        raise InvalidRequest(
            f"max_price.{name} must be at most {MAX_PRICE_CAP_USD_PER_1K} (USD per 1K tokens)."
        )
    # Exactly as given, but with no more digits than a price needs (18 places are an atto-dollar).
    return price.quantize(Decimal("1e-18")) if price.as_tuple().exponent < -18 else price


def route_options_validate(
    *,
    model: Any = None,
    task_type: Any = None,
    budget_priority: Any = None,
    fallback_models: Any = None,
    use_openrouter: Any = True,
    sort: Any = None,
    data_collection: Any = "allow",
    zdr: Any = None,
    max_price: Any = None,
    require_parameters: Any = None,
) -> RouteOptions:
    """Check the routing options of a call; a clear 400 for anything off."""
    if model is not None and (not isinstance(model, str) or not model.strip() or not model.isprintable()):
        raise InvalidRequest(
            "model must be a model id such as 'openai/gpt-4o', or 'auto'.", code="invalid_model"
        )
    if task_type is not None and task_type not in TASK_TYPES:
        raise InvalidRequest(f"task_type must be one of {', '.join(TASK_TYPES)}.")
    budget_priority = budget_priority or settings.DEFAULT_BUDGET_PRIORITY
    if budget_priority not in BUDGET_PRIORITIES:
        raise InvalidRequest(f"budget_priority must be one of {', '.join(BUDGET_PRIORITIES)}.")
    if fallback_models is None:
        fallback_models = []
    if not isinstance(fallback_models, list) or not all(
        isinstance(m, str) and m and m.isprintable() for m in fallback_models
    ):
        raise InvalidRequest("fallback_models must be a list of model ids.")
    if len(fallback_models) > MAX_FALLBACK_MODELS:
        raise InvalidRequest(f"At most {MAX_FALLBACK_MODELS} fallback models.")
    if not isinstance(use_openrouter, bool):
        raise InvalidRequest("use_openrouter must be true or false.")
    if sort is not None and sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}.")
    if data_collection is None:
        data_collection = "allow"
    if data_collection not in DATA_COLLECTION:
        raise InvalidRequest("data_collection must be 'allow' or 'deny'.")
    if zdr is not None and not isinstance(zdr, bool):
        raise InvalidRequest("zdr must be true or false.")
    if require_parameters is not None and not isinstance(require_parameters, bool):
        raise InvalidRequest("provider.require_parameters must be true or false.")
    caps = None
    if max_price is not None:
        if not isinstance(max_price, dict) or not max_price or set(max_price) - {"prompt", "completion"}:
            raise InvalidRequest(
                'max_price must be {"prompt": USD per 1K tokens, "completion": USD per 1K tokens}.'
            )
        caps = {name: _price_per_1k(value, name) for name, value in max_price.items()}
    model = model.strip() if isinstance(model, str) else None
    return RouteOptions(
        model=None if model in (None, AUTO_MODEL) else model,
        task_type=task_type,
        budget_priority=budget_priority,
        fallback_models=list(dict.fromkeys(fallback_models)),
        use_openrouter=use_openrouter,
        sort=sort,
        data_collection=data_collection,
        zdr=zdr,
        max_price=caps,
        require_parameters=require_parameters,
    )


@dataclass(slots=True)
class Attempt:
    """One (model, provider) step of a route, and how it went."""

    model: str  # catalog id
    provider: str  # provider name, "" when the model itself was ruled out
    native_model: str = ""
    config: ProviderConfig | None = field(default=None, repr=False)
    extra_body: dict[str, Any] = field(default_factory=dict)
    status: str = "planned"  # planned | ok | error | skipped
    reason: str = ""
    error_class: str = ""
    latency_ms: int = 0
    trial: bool = False  # the provider's breaker is half-open: the attempt must claim its trial first
    dropped: list[str] = field(default_factory=list)  # advisory parameters this wire leaves out
    # An automatic choice's successor: tried only once an upstream said it has no `standby_for` model.
    standby_for: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "status": self.status,
            "error_class": self.error_class,
            "latency_ms": self.latency_ms,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RoutePlan:
    model: str  # the model routing chose first
    task_type: str
    route: str  # "explicit" | "matrix:<task_type>/<budget_priority>"
    attempts: list[Attempt]
    models: dict[str, CatalogModel]  # every model of the chain, by id
    # Why this model: "simple/balanced: google/gemini-flash-1.5 retired, successor google/gemini-2.5-flash".
    reason: str = ""
    gone: set[str] = field(default_factory=set)  # models an upstream said it does not have, this call
    successor_of: dict[str, str] = field(default_factory=dict)  # model -> its callable successor

    @property
    def runnable(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status != "skipped"]

    def attempt_due(self, attempt: Attempt) -> bool:
        """Whether to try `attempt` now: a standby successor only once its predecessor is gone (then
        the reason says the call moved to it)."""
        if attempt.standby_for is None:
            return True
        if attempt.standby_for not in self.gone:
            return False
        if attempt.model not in self.gone and f"successor {attempt.model}" not in self.reason:
            head = self.reason.split(":", 1)[0] if ":" in self.reason else self.route
            self.reason = (
                f"{head}: {attempt.standby_for} retired upstream (no such model), successor {attempt.model}"
            )
        return True

    def attempt_failed(self, attempt: Attempt, error: UpstreamError) -> None:
        """Note an attempt's failure; "no such model" makes the model's standby successor due."""
        attempt.status, attempt.error_class = "error", type(error).__name__
        if isinstance(error, UpstreamModelGone):
            self.gone.add(attempt.model)
            attempt.reason = f"{attempt.provider} has no such model"

    def answered(self, attempt: Attempt, reported_model: str | None) -> Attempt:
        """The attempt that really answered. OpenRouter's own `models` fallback may answer with a later
        model of the chain: then the requested model's attempt says so and a step for the answering
        model follows it (status ok), so the attempts, `fallback_used`, the usage row and the price
        all name the model that answered."""
        chain = attempt.extra_body.get("models") or ()
        if (
            attempt.provider != OPENROUTER
            or not reported_model
            or reported_model == attempt.model
            or reported_model not in chain
            or reported_model not in self.models
        ):
            return attempt
        attempt.status, attempt.error_class = "error", OPENROUTER_FALLBACK
        attempt.reason = f"openrouter answered with its fallback {reported_model}"
        answering = replace(
            attempt, model=reported_model, native_model=reported_model, status="ok", error_class="", reason=""
        )
        self.attempts.insert(self.attempts.index(attempt) + 1, answering)
        return answering

    def worst_prices(self) -> WorstPrices:
        """The dearest price of each kind among the models that may answer: an input token at the
        highest of prompt, cache read and cache writes; an output token at completion or reasoning."""
        return WorstPrices.of([self.models[i] for i in {a.model for a in self.runnable}])

    def attempts_as_dicts(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.attempts if a.status != "planned"]


def _health():
    # Imported lazily: monitoring imports gateway's catalog for its pages.
    from monitoring.services import ProviderHealthMonitor

    return ProviderHealthMonitor()


def _over_cap(model: CatalogModel, caps: dict[str, Decimal] | None) -> str:
    if not caps:
        return ""
    for name, price in (("prompt", model.prompt_price), ("completion", model.completion_price)):
        if name in caps and price * PER_1K > caps[name]:
            per_1k = (price * PER_1K).normalize()
            return (
                f"{name} price ${per_1k:f}/1K tokens exceeds max_price.{name} ${caps[name].normalize():f}/1K"
            )
    return ""


def _openrouter_body(options: RouteOptions, chain: list[str]) -> dict[str, Any]:
    """OpenRouter's own routing controls: its `provider` object and its `models` fallback array."""
    provider: dict[str, Any] = {"allow_fallbacks": True, "data_collection": options.data_collection}
    if options.sort:
        provider["sort"] = options.sort
    if options.zdr is not None:
        provider["zdr"] = options.zdr
    if options.require_parameters is not None:
        provider["require_parameters"] = options.require_parameters
    if options.max_price:
        # OpenRouter caps are USD per million tokens; ours are per 1K (the transport writes Decimals exactly).
        provider["max_price"] = {k: v * PER_1K for k, v in options.max_price.items()}
    body: dict[str, Any] = {"provider": provider}
    if len(chain) > 1:
        body["models"] = chain
    return body


def _direct_order(attempts: list[Attempt], sort: str | None, model: CatalogModel) -> list[Attempt]:
    """Healthy providers first; within them by the measured metric `sort` asks for."""
    if len(attempts) < 2:
        return attempts
    health = _health()

    def key(attempt: Attempt):
        unhealthy = not health.is_provider_healthy(attempt.provider, model.id)
        if sort in ("latency", "throughput"):
            measured = health.measured(attempt.provider, model.id)
            if sort == "latency":
                value = measured.get("latency_p50_ms")
                return (unhealthy, value is None, value or 0)
            value = measured.get("throughput_tps")
            return (unhealthy, value is None, -(value or 0))
        # One catalog price per model: among its providers price does not reorder anything.
        return (unhealthy,)

    return sorted(attempts, key=key)


def model_direct_providers(model: CatalogModel) -> list[str]:
    """The direct providers that can serve `model` (configured or not), from the catalog's map."""
    names = [p for p in model.providers if p not in (OPENROUTER, DEMO)]
    vendor_default = direct_provider_for(model.id)
    if not names and vendor_default in SAME_NAME_PROVIDERS:
        names.append(vendor_default)
    return names


def _standby_successors(model: CatalogModel) -> list[CatalogModel]:
    """The callable successor(s) of an automatic choice: the next model, in case an upstream already
    removed this one (its own retired successors are skipped)."""
    return catalog_successor_chain(model)[-1:] if model.successor else []


def routing_matrix_get() -> list[dict[str, Any]]:
    """The matrix as a grid for staff: one row per task type, one cell per budget priority, each with its
    model, the model's lifecycle and shutdown date, and the guide's original choice (`origin`)."""
    from .catalog import CatalogModel

    rules = {(r.task_type, r.budget_priority): r for r in RoutingRule.objects.select_related("model").all()}
    rows = []
    for task_type in TASK_TYPES:
        cells = []
        for priority in BUDGET_PRIORITIES:
            rule = rules.get((task_type, priority))
            model = CatalogModel.from_entry(rule.model) if rule else None
            cells.append(
                {
                    "task_type": task_type,
                    "budget_priority": priority,
                    "model": rule.model_id if rule else "",
                    "origin": rule.origin if rule else "",
                    "status": model.lifecycle if model else "",
                    "shutdown_date": model.shutdown_date if model else None,
                }
            )
        rows.append({"task_type": task_type, "cells": cells})
    return rows


def routing_matrix_update(*, cells: dict[tuple[str, str], str]) -> list[str]:
    """Point matrix cells at models, all or nothing: every model must be in the catalog, switched on and
    not retired (a 400 naming the cells otherwise). Returns the cells that changed, as "task/priority"."""
    from django.db import transaction

    from .catalog import CatalogModel, catalog_cache_clear

    wanted = {cell: model_id for cell, model_id in cells.items() if model_id}
    unknown_cells = [c for c in wanted if c[0] not in TASK_TYPES or c[1] not in BUDGET_PRIORITIES]
    if unknown_cells:
        raise InvalidRequest(f"No such matrix cell: {', '.join('/'.join(c) for c in unknown_cells)}.")
    entries = {e.id: e for e in ModelCatalogEntry.objects.filter(id__in=set(wanted.values()))}
    refused = [
        f"{task}/{priority}: {model_id}"
        for (task, priority), model_id in wanted.items()
        if model_id not in entries
        or not entries[model_id].is_active
        or CatalogModel.from_entry(entries[model_id]).retired
    ]
    if refused:
        raise InvalidRequest(
            f"These models cannot be called (unknown, switched off or retired): {'; '.join(refused)}."
        )
    changed = []
    with transaction.atomic():
        for (task, priority), model_id in wanted.items():
            rule, created = RoutingRule.objects.select_for_update().get_or_create(
                task_type=task, budget_priority=priority, defaults={"model_id": model_id}
            )
            if created or rule.model_id != model_id:
                rule.model_id = model_id
                rule.save(update_fields=["model"])
                changed.append(f"{task}/{priority}")
    catalog_cache_clear(model_ids=list(set(wanted.values())))
    return changed


def _matrix_model(task_type: str, budget_priority: str) -> str:
    rule = RoutingRule.objects.filter(task_type=task_type, budget_priority=budget_priority).first()
    if rule is None:
        raise InvalidRequest(
            f"No routing rule for {task_type}/{budget_priority}; name a model.", code="no_route"
        )
    return rule.model_id


PARAMS_REASON = "cannot honour"
EMBEDDING = "embedding"


def _modes_check(chain: list[str], models: dict[str, CatalogModel], kind: str) -> None:
    """Embedding models answer /v1/embeddings only, chat models everything else."""
    for model_id in chain:
        mode = models[model_id].mode
        if not mode:
            continue  # a local Ollama model may be either
        if kind == "embeddings" and mode != EMBEDDING:
            raise InvalidRequest(
                f"{model_id} is not an embedding model; GET /v1/models lists the embedding models.",
                code="invalid_model",
            )
        if kind != "embeddings" and mode == EMBEDDING:
            raise InvalidRequest(
                f"{model_id} is an embedding model: use POST /v1/embeddings.", code="invalid_model"
            )


def _params_apply(attempts: list[Attempt], chat: ChatRequest) -> None:
    """Skip attempts whose wire cannot honour an answer-changing parameter; note the advisory ones
    it leaves out (gateway.providers.params has the table)."""
    for attempt in attempts:
        if attempt.status != "planned" or attempt.config is None:
            continue
        if chat.kind == "embeddings":
            reason = can_embed(attempt.config, chat.input or [])
            if reason:
                attempt.status, attempt.reason = "skipped", reason
            continue
        if chat.anthropic is not None and native_messages_adapter(attempt.config, attempt.native_model):
            # The caller's Messages body goes as given: Anthropic itself judges every field of it.
            continue
        fit = params_fit(
            attempt.config.wire, chat.params, max_tokens=chat.max_tokens, temperature=chat.temperature
        )
        if fit.unsupported:
            attempt.status = "skipped"
            attempt.reason = (
                f"{PARAMS_REASON} {', '.join(fit.unsupported)}: {attempt.provider} has no equivalent"
            )
        attempt.dropped = fit.dropped


def _params_refused(attempts: list[Attempt], chat: ChatRequest) -> InvalidRequest:
    names = list(
        dict.fromkeys(
            name
            for a in attempts
            if a.config is not None
            for name in params_fit(
                a.config.wire, chat.params, max_tokens=chat.max_tokens, temperature=chat.temperature
            ).unsupported
        )
    )
    return InvalidRequest(
        f"No provider on this route can honour {', '.join(names)}; drop it or choose a model served "
        "through an OpenAI-compatible provider.",
        code="unsupported_parameter",
        extra={"param": names[0] if names else None, "attempts": [a.as_dict() for a in attempts]},
    )


def route_plan(*, options: RouteOptions, chat: ChatRequest | None = None) -> RoutePlan:
    """Resolve the model chain and order every attempt (sync: reads the catalog and the matrix)."""
    configs = provider_configs()
    task_type = options.task_type or DEFAULT_TASK_TYPE
    if options.model:
        first, route = options.model, "explicit"
    else:
        first = _matrix_model(task_type, options.budget_priority)
        route = f"matrix:{task_type}/{options.budget_priority}"
    chain = list(dict.fromkeys([first, *options.fallback_models]))
    models = catalog_models_get(model_ids=chain)
    aliases = catalog_aliases_resolve(names=[m for m in chain if m not in models])
    if aliases:
        # Another name of a catalog model (Anthropic's `claude-sonnet-4-5`): routed as that model.
        first = aliases.get(first, first)
        chain = list(dict.fromkeys(aliases.get(m, m) for m in chain))
        models.update(catalog_models_get(model_ids=[m for m in chain if m not in models]))
    for model_id in chain:
        if model_id not in models and model_id.startswith(OLLAMA_PREFIX) and "ollama" in configs:
            models[model_id] = CatalogModel.local_ollama(model_id)
    unknown = [m for m in chain if m not in models]
    if unknown:
        raise ModelNotFound(f"Unknown model: {', '.join(unknown)}. GET /v1/models lists the models.")
    _modes_check(chain, models, chat.kind if chat is not None else "chat")

    attempts: list[Attempt] = []
    standby: dict[str, str] = {}  # standby model -> the model it stands in for
    if route == "explicit":
        reason = f"explicit: {first}"
        if all(models[m].retired for m in chain):
            # No silent switch for an explicit choice: the caller learns the successor and decides
            # (with fallbacks listed, a retired model is passed over for them).
            raise catalog_retired_error(models[first])
    else:
        reason = f"{task_type}/{options.budget_priority}: {first}"
        if models[first].retired:
            successors = catalog_successor_chain(models[first])
            if not successors:
                error = catalog_retired_error(models[first], explicit=False)
                raise ModelRetired(
                    f"The routing matrix cell {task_type}/{options.budget_priority} names retired model "
                    f"{first} and no successor can be called; name a model.",
                    model=first,
                    successor=error.successor,
                )
            steps = [first, *(m.id for m in successors)]
            reason = f"{task_type}/{options.budget_priority}: " + " retired, successor ".join(steps)
            attempts.append(
                Attempt(
                    model=first,
                    provider="",
                    status="skipped",
                    reason=f"retired, successor {successors[-1].id}",
                )
            )
            models.update({m.id: m for m in successors})
            first = successors[-1].id
            chain = list(dict.fromkeys([first, *options.fallback_models]))
        for successor in _standby_successors(models[first]):
            if successor.id not in chain:
                models[successor.id] = successor
                standby[successor.id] = first
                chain.insert(1, successor.id)

    use_openrouter = options.use_openrouter and settings.USE_OPENROUTER and OPENROUTER in configs
    within_cap = [m for m in chain if not _over_cap(models[m], options.max_price)]
    for model_id in chain:
        model = models[model_id]
        if model.retired:
            # A retired fallback (or an explicit retired model with fallbacks listed) is passed over.
            chain_successor = catalog_retired_error(model).successor
            attempts.append(
                Attempt(
                    model=model_id,
                    provider="",
                    status="skipped",
                    reason="retired" + (f", successor {chain_successor}" if chain_successor else ""),
                )
            )
            continue
        cap_reason = _over_cap(model, options.max_price)
        if cap_reason:
            attempts.append(Attempt(model=model_id, provider="", status="skipped", reason=cap_reason))
            continue
        per_model: list[Attempt] = []
        if use_openrouter and OPENROUTER in model.providers:
            native = model.providers.get(OPENROUTER, model_id)
            if options.zdr and not model.zdr:
                per_model.append(
                    Attempt(
                        model=model_id,
                        provider=OPENROUTER,
                        status="skipped",
                        reason="zdr requested: no zero-data-retention endpoint is known for this model",
                    )
                )
            else:
                # OpenRouter's own `models` array: this model, then the later ones it also serves
                # (never a standby successor: that one is only for "no such model", and ours to decide).
                rest = [
                    m
                    for m in within_cap[within_cap.index(model_id) :]
                    if OPENROUTER in models[m].providers
                    and not models[m].retired
                    and (m == model_id or m not in standby)
                ]
                per_model.append(
                    Attempt(
                        model=model_id,
                        provider=OPENROUTER,
                        native_model=native,
                        config=configs[OPENROUTER],
                        extra_body=_openrouter_body(
                            options, [models[m].providers.get(OPENROUTER, m) for m in rest]
                        ),
                    )
                )
        direct_names = model_direct_providers(model)
        direct: list[Attempt] = []
        for name in direct_names:
            config = configs.get(name)
            if config is None:
                continue
            native = model.providers.get(name) or model_id.split("/", 1)[1]
            if options.private and not config.supports_zdr:
                per_model.append(
                    Attempt(
                        model=model_id,
                        provider=name,
                        status="skipped",
                        reason=f"{'zdr' if options.zdr else 'data_collection=deny'} requested: "
                        f"{name} cannot promise it",
                    )
                )
                continue
            direct.append(Attempt(model=model_id, provider=name, native_model=native, config=config))
        per_model.extend(_direct_order(direct, options.sort, model))
        if not per_model:
            if DEMO in configs:
                per_model.append(
                    Attempt(model=model_id, provider=DEMO, native_model=model_id, config=configs[DEMO])
                )
            else:
                per_model.append(
                    Attempt(
                        model=model_id,
                        provider="",
                        status="skipped",
                        reason="no configured provider serves this model",
                    )
                )
        for attempt in per_model:
            attempt.standby_for = standby.get(model_id)
        attempts.extend(per_model)

    if chat is not None:
        _params_apply(attempts, chat)
    for model_id, predecessor in standby.items():
        if not any(a.model == predecessor and a.status != "skipped" for a in attempts):
            # The chosen model cannot be tried at all (price cap, no provider): its successor can.
            for attempt in attempts:
                if attempt.model == model_id:
                    attempt.standby_for = None
    # For error messages only: the named successor, not fetched (no extra catalog read per call).
    successor_of = {m: models[m].successor for m in chain if models[m].successor}
    successor_of.update({predecessor: model_id for model_id, predecessor in standby.items()})
    _circuits_apply(attempts)
    plan = RoutePlan(
        model=first,
        task_type=task_type,
        route=route,
        attempts=attempts,
        models=models,
        reason=reason,
        successor_of=successor_of,
    )
    if plan.attempts and not plan.runnable and any(a.reason.startswith(CIRCUIT_REASON) for a in attempts):
        raise UpstreamUnavailable(
            "Every provider for this request is cooling down after repeated failures; try again shortly.",
            code="circuit_open",
            extra={"attempts": plan.attempts_as_dicts()},
        )
    if not plan.runnable and chat is not None and any(a.reason.startswith(PARAMS_REASON) for a in attempts):
        raise _params_refused(attempts, chat)
    if not plan.runnable:
        reasons = "; ".join(
            f"{a.model}{' via ' + a.provider if a.provider else ''}: {a.reason}" for a in attempts
        )
        raise InvalidRequest(
            f"No provider can serve this request ({reasons}).",
            code="no_route",
            extra={"attempts": plan.attempts_as_dicts()},
        )
    return plan


CIRCUIT_REASON = "circuit open"


def _circuits_apply(attempts: list[Attempt]) -> None:
    """Skip attempts at providers whose breaker is open; flag those that are half-open for a trial."""
    providers = [a.provider for a in attempts if a.status == "planned" and a.provider not in ("", DEMO)]
    if not providers:
        return
    try:
        circuits = _health().circuit_states(providers, claim_trials=False)
    except Exception as exc:
        # The shared state (Redis) is down: fail closed rather than call providers blind.
        logger.error("provider state store unavailable: %s", type(exc).__name__)
        raise ServiceUnavailable("The provider state store is unavailable; try again shortly.")
    for attempt in attempts:
        circuit = circuits.get(attempt.provider)
        if attempt.status != "planned" or circuit is None:
            continue
        if circuit == "open":
            attempt.status = "skipped"
            attempt.reason = f"{CIRCUIT_REASON}: {attempt.provider} kept failing; cooling down"
        elif circuit == "half_open":
            attempt.trial = True


def attempt_trial_claim(attempt: Attempt) -> bool:
    """For a half-open provider: whether this call won its one trial (else the attempt is skipped)."""
    if not attempt.trial:
        return True
    try:
        # Closed: another call's trial succeeded meanwhile.
        won = _health().circuit_states([attempt.provider])[attempt.provider] in ("half_open", "closed")
    except Exception:
        won = False
    if not won:
        attempt.status = "skipped"
        attempt.reason = f"{CIRCUIT_REASON}: {attempt.provider} is being tried by another call"
    return won


def chain_failed(plan: RoutePlan) -> UpstreamError:
    """The error for a chain where every attempt failed: 504 if they all timed out, else 502."""
    tried = [a for a in plan.attempts if a.status == "error"]
    if tried and all(a.error_class == UpstreamModelGone.__name__ for a in tried):
        # Every upstream said it has no such model: that is a 404, not an outage.
        successor = plan.successor_of.get(tried[0].model)
        names = ", ".join(dict.fromkeys(a.model for a in tried))
        hint = f"; its successor is {successor}" if successor and successor not in plan.gone else ""
        return ModelRetired(
            f"The upstream no longer serves {names}{hint}.",
            model=tried[0].model,
            successor=successor if hint else None,
            extra={
                "param": "model",
                "successor": successor if hint else None,
                "attempts": plan.attempts_as_dicts(),
            },
        )
    if not tried:
        return UpstreamUnavailable(
            "Every provider for this request is cooling down after repeated failures; try again shortly.",
            code="circuit_open",
            extra={"attempts": plan.attempts_as_dicts()},
        )
    error_cls = (
        UpstreamTimeout
        if tried and all(a.error_class == UpstreamTimeout.__name__ for a in tried)
        else UpstreamUnavailable
    )
    summary = ", ".join(f"{a.model} via {a.provider}: {a.error_class}" for a in tried)
    return error_cls(
        f"Every upstream attempt failed ({summary}).",
        code="all_attempts_failed" if error_cls is UpstreamUnavailable else None,
        extra={"attempts": plan.attempts_as_dicts()},
    )


def attempt_request(attempt: Attempt, request: ChatRequest) -> ChatRequest:
    extra = {**request.extra_body, **attempt.extra_body}
    return replace(request, model=attempt.native_model, extra_body=extra)


async def attempts_run(*, plan: RoutePlan, request: ChatRequest) -> tuple[ChatResult, Attempt]:
    """Try the plan's attempts in order; the first success wins.

    A retryable upstream failure moves on; one caused by the request itself (a 4xx) stops the chain,
    since every other attempt would fail the same way.
    """
    for attempt in plan.runnable:
        if not plan.attempt_due(attempt):
            continue
        if attempt.trial and not await run_db_step(attempt_trial_claim)(attempt):
            continue
        started = time.monotonic()
        try:
            result = await provider_call(attempt.config, attempt_request(attempt, request))
        except UpstreamError as exc:
            attempt.latency_ms = int((time.monotonic() - started) * 1000)
            plan.attempt_failed(attempt, exc)
            logger.info("attempt %s via %s failed: %s", attempt.model, attempt.provider, attempt.error_class)
            if not exc.retryable:
                raise
            continue
        attempt.latency_ms = int((time.monotonic() - started) * 1000)
        attempt.status = "ok"
        return result, plan.answered(attempt, result.model)
    raise chain_failed(plan)
