"""The model catalog: which models exist, what they cost (USD per token) and who serves them.

Selectors read it for routing and the model lists; `catalog_sync_apply` folds OpenRouter's
`GET /models` answer into it (the Celery task in `gateway.tasks` fetches and calls it).

Every call reads its route's models, so they are served from the shared cache for
`CATALOG_CACHE_SECONDS`; the sync and staff edits in admin drop what they change (`catalog_cache_clear`).

Lifecycle: a model is `active`, `deprecated` (still served until its `shutdown_date`) or `retired` (no
longer served; a deprecated model past its shutdown date counts as retired). Retired models stay in the
catalog, since usage rows and receipts name them; `successor` names what replaces one. Only callable
models (staff-enabled and not retired) are listed; `catalog_model_callable` answers a lookup of a retired
one with `ModelRetired` naming the successor.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from smartspec.errors import ModelNotFound, ModelRetired

from .models import ModelAlias, ModelCatalogEntry, RoutingRule

logger = logging.getLogger(__name__)

OPENROUTER = "openrouter"
# `ollama/<name>` ids are local models: not in OpenRouter's list, free, served by Ollama only.
OLLAMA_PREFIX = "ollama/"
ACTIVE, DEPRECATED, RETIRED = (
    ModelCatalogEntry.Status.ACTIVE.value,
    ModelCatalogEntry.Status.DEPRECATED.value,
    ModelCatalogEntry.Status.RETIRED.value,
)
# Successor links are staff data: a loop or a very long chain must not hang routing.
MAX_SUCCESSOR_STEPS = 8


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """What routing and pricing need of one catalog entry (no ORM object crosses into async code)."""

    id: str
    display_name: str
    context_length: int
    prompt_price: Decimal  # USD per token
    completion_price: Decimal  # USD per token
    providers: dict[str, str] = field(default_factory=dict)  # provider -> its model name
    zdr: bool = False
    # The other usage components (USD per token); None: priced as the plain prompt/completion token.
    input_cache_read_price: Decimal | None = None
    input_cache_write_price: Decimal | None = None  # the 5-minute (or only) cache write
    input_cache_write_1h_price: Decimal | None = None
    internal_reasoning_price: Decimal | None = None
    request_price: Decimal = Decimal(0)  # per call
    image_price: Decimal = Decimal(0)  # per input image
    mode: str = "chat"  # chat | embedding; "" for a local Ollama model, which may be either
    created: int = 0  # Unix time the model was released or added (OpenAI's model `created`)
    status: str = ACTIVE
    shutdown_date: datetime.date | None = None
    successor: str | None = None  # catalog id of the model that replaces this one

    @classmethod
    def from_entry(cls, entry: ModelCatalogEntry) -> CatalogModel:
        return cls(
            id=entry.id,
            display_name=entry.display_name or entry.id,
            context_length=entry.context_length,
            prompt_price=Decimal(entry.prompt_price),
            completion_price=Decimal(entry.completion_price),
            providers=dict(entry.providers or {}),
            zdr=entry.zdr,
            input_cache_read_price=_optional(entry.input_cache_read_price),
            input_cache_write_price=_optional(entry.input_cache_write_price),
            input_cache_write_1h_price=_optional(entry.input_cache_write_1h_price),
            internal_reasoning_price=_optional(entry.internal_reasoning_price),
            request_price=Decimal(entry.request_price or 0),
            image_price=Decimal(entry.image_price or 0),
            mode=entry.mode,
            created=int(entry.created_at.timestamp()) if entry.created_at else 0,
            status=entry.status,
            shutdown_date=entry.shutdown_date,
            successor=entry.successor_id,
        )

    @property
    def cache_read_price(self) -> Decimal:
        return self.prompt_price if self.input_cache_read_price is None else self.input_cache_read_price

    @property
    def cache_write_price(self) -> Decimal:
        return self.prompt_price if self.input_cache_write_price is None else self.input_cache_write_price

    @property
    def cache_write_1h_price(self) -> Decimal:
        if self.input_cache_write_1h_price is None:
            return self.cache_write_price
        return self.input_cache_write_1h_price

    @property
    def reasoning_price(self) -> Decimal:
        if self.internal_reasoning_price is None:
            return self.completion_price
        return self.internal_reasoning_price

    def pricing(self) -> dict[str, Decimal]:
        """The prices in OpenRouter's names, as `/v1/models` shows them: every component that
        applies, each at the price a token of it is billed at."""
        return {
            "prompt": self.prompt_price,
            "completion": self.completion_price,
            "input_cache_read": self.cache_read_price,
            "input_cache_write": self.cache_write_price,
            "input_cache_write_1h": self.cache_write_1h_price,
            "internal_reasoning": self.reasoning_price,
            "request": self.request_price,
            "image": self.image_price,
        }

    @property
    def lifecycle(self) -> str:
        """The status as of today: a deprecated model past its shutdown date is retired."""
        return lifecycle_status(self.status, self.shutdown_date)

    @property
    def retired(self) -> bool:
        return self.lifecycle == RETIRED

    @classmethod
    def local_ollama(cls, model_id: str) -> CatalogModel:
        name = model_id[len(OLLAMA_PREFIX) :]
        return cls(
            id=model_id,
            display_name=f"Ollama: {name}",
            context_length=0,
            prompt_price=Decimal(0),
            completion_price=Decimal(0),
            providers={"ollama": name},
            zdr=True,
            mode="",
        )


def _optional(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def lifecycle_status(
    status: str, shutdown_date: datetime.date | None, today: datetime.date | None = None
) -> str:
    """`status` as of `today` (default: today, UTC): deprecated past its shutdown date means retired."""
    today = today or timezone.now().date()
    if status == DEPRECATED and shutdown_date is not None and shutdown_date <= today:
        return RETIRED
    return status


def _cache_key(model_id: str) -> str:
    # Versioned with CatalogModel's fields: an older process's cached entries are never read back.
    return f"catalog:v4:{model_id}"


def catalog_cache_clear(*, model_ids: list[str]) -> None:
    """Make the next read of these models go to the database (after they were written)."""
    if model_ids:
        cache.delete_many([_cache_key(m) for m in model_ids])


def _alias_key(alias: str) -> str:
    return f"catalog:alias:v1:{alias}"


def catalog_aliases_resolve(*, names: list[str]) -> dict[str, str]:
    """The catalog ids that `names` are aliases of (a name that is no alias is absent)."""
    names = list(dict.fromkeys(n for n in names if isinstance(n, str) and n))
    if not names:
        return {}
    ttl = settings.CATALOG_CACHE_SECONDS
    found: dict[str, str] = {}
    if ttl > 0:
        cached = cache.get_many([_alias_key(n) for n in names])
        found = {n: cached[_alias_key(n)] for n in names if isinstance(cached.get(_alias_key(n)), str)}
    missing = [n for n in names if n not in found]
    if missing:
        loaded = dict(ModelAlias.objects.filter(alias__in=missing).values_list("alias", "model_id"))
        if ttl > 0 and loaded:
            cache.set_many({_alias_key(a): m for a, m in loaded.items()}, ttl)
        found.update(loaded)
    return found


def catalog_alias_cache_clear(*, aliases: list[str]) -> None:
    if aliases:
        cache.delete_many([_alias_key(a) for a in aliases])


ANTHROPIC_PREFIX = "anthropic/"


def anthropic_aliases(entry: ModelCatalogEntry) -> list[str]:
    """The names Anthropic gives a Claude catalog model: its id in Anthropic's spelling
    (`anthropic/claude-sonnet-4.5` -> `claude-sonnet-4-5`) and its direct model name."""
    if not entry.id.startswith(ANTHROPIC_PREFIX):
        return []
    names = [entry.id[len(ANTHROPIC_PREFIX) :].replace(".", "-")]
    direct = (entry.providers or {}).get("anthropic")
    if isinstance(direct, str):
        names.append(direct)
    return [n for n in dict.fromkeys(names) if n and "/" not in n and len(n) <= 200]


def catalog_aliases_sync() -> int:
    """Add the Anthropic names of every Claude catalog model that no alias claims yet (staff's and
    earlier aliases are never changed); returns how many were added."""
    taken = set(ModelAlias.objects.values_list("alias", flat=True))
    added = []
    for entry in ModelCatalogEntry.objects.filter(id__startswith=ANTHROPIC_PREFIX):
        for name in anthropic_aliases(entry):
            if name not in taken:
                taken.add(name)
                added.append(ModelAlias(alias=name, model=entry, source=ModelAlias.Source.SYNC))
    ModelAlias.objects.bulk_create(added, ignore_conflicts=True)
    return len(added)


# Models a request's caller already read from the cache (with its API key, in one MGET).
_primed: contextvars.ContextVar[dict[str, CatalogModel] | None] = contextvars.ContextVar(
    "catalog_primed", default=None
)


def catalog_cache_keys(*, model_ids: list[str]) -> list[str]:
    """The cache entries of these models, for a caller that reads them with other entries."""
    if settings.CATALOG_CACHE_SECONDS <= 0:
        return []
    return [_cache_key(m) for m in dict.fromkeys(model_ids) if isinstance(m, str)]


def catalog_prime(*, cached: dict[str, Any]) -> contextvars.Token:
    """Serve the catalog entries found among `cached` (cache key -> value) to this request's
    `catalog_models_get`; give the token to `catalog_unprime` when the request is done."""
    models = {value.id: value for value in cached.values() if isinstance(value, CatalogModel)}
    return _primed.set(models)


def catalog_unprime(token: contextvars.Token) -> None:
    _primed.reset(token)


def catalog_models_get(*, model_ids: list[str]) -> dict[str, CatalogModel]:
    """The active catalog models among `model_ids` (unknown or inactive ids are absent)."""
    ids = set(model_ids)
    ttl = settings.CATALOG_CACHE_SECONDS
    found: dict[str, CatalogModel] = {}
    if ttl > 0:
        primed = _primed.get() or {}
        found = {m: primed[m] for m in ids if m in primed}
        unread = ids - found.keys()
        if unread:
            cached = cache.get_many([_cache_key(m) for m in unread])
            found.update({model.id: model for model in cached.values() if isinstance(model, CatalogModel)})
    missing = ids - found.keys()
    if missing:
        loaded = {
            entry.id: CatalogModel.from_entry(entry)
            for entry in ModelCatalogEntry.objects.filter(id__in=missing, is_active=True)
        }
        if ttl > 0 and loaded:
            cache.set_many({_cache_key(m): model for m, model in loaded.items()}, ttl)
        found.update(loaded)
    return found


def catalog_list(*, active_only: bool = True) -> list[CatalogModel]:
    """Catalog models; `active_only` keeps the staff-enabled ones (retired ones included: see
    `catalog_callable`)."""
    entries = ModelCatalogEntry.objects.all()
    if active_only:
        entries = entries.filter(is_active=True)
    return [CatalogModel.from_entry(entry) for entry in entries]


def catalog_callable() -> list[CatalogModel]:
    """The models that can be called now: staff-enabled and not retired (what the model lists show)."""
    entries = ModelCatalogEntry.objects.filter(is_active=True).exclude(status=RETIRED)
    return [model for model in map(CatalogModel.from_entry, entries) if not model.retired]


def catalog_successor_chain(model: CatalogModel) -> list[CatalogModel]:
    """The successors of a retired `model`, in order, up to the first callable one (empty when the
    chain ends without one: no successor, a loop, or a successor staff switched off)."""
    chain: list[CatalogModel] = []
    seen = {model.id}
    current = model
    while current.successor and current.successor not in seen and len(chain) < MAX_SUCCESSOR_STEPS:
        successor = catalog_models_get(model_ids=[current.successor]).get(current.successor)
        if successor is None:
            return []
        chain.append(successor)
        if not successor.retired:
            return chain
        seen.add(successor.id)
        current = successor
    return []


def catalog_retired_error(model: CatalogModel, *, explicit: bool = True) -> ModelRetired:
    """The 404 for a retired model, naming the first callable successor when there is one."""
    chain = catalog_successor_chain(model)
    successor = chain[-1].id if chain else None
    when = f" on {model.shutdown_date.isoformat()}" if model.shutdown_date else ""
    if successor:
        hint = f"; use its successor {successor}" + (
            " (or list fallback_models to let the gateway choose)" if explicit else ""
        )
    else:
        hint = "; GET /v1/models lists the models that can be called"
    return ModelRetired(f"Model {model.id} was retired{when}{hint}.", model=model.id, successor=successor)


def catalog_model_callable(*, model_id: str) -> CatalogModel:
    """One model that can be called now: 404 `model_not_found` for an unknown or switched-off id,
    404 `model_retired` (with its successor) for a retired one."""
    model = catalog_models_get(model_ids=[model_id]).get(model_id)
    if model is None:
        raise ModelNotFound(f"Unknown model: {model_id[:200]}. GET /v1/models lists the models.")
    if model.retired:
        raise catalog_retired_error(model)
    return model


def catalog_matrix_warnings() -> list[dict[str, Any]]:
    """Routing matrix cells on a model that is deprecated or retired (as of today), for staff: the cell,
    its model, the status, the shutdown date and where a call now goes (the first callable successor)."""
    warnings = []
    for rule in RoutingRule.objects.select_related("model").order_by("task_type", "budget_priority"):
        model = CatalogModel.from_entry(rule.model)
        status = model.lifecycle
        if status == ACTIVE and rule.model.is_active:
            continue
        chain = catalog_successor_chain(model) if status == RETIRED else []
        warnings.append(
            {
                "cell": f"{rule.task_type}/{rule.budget_priority}",
                "model": model.id,
                "status": status if rule.model.is_active else "switched off",
                "shutdown_date": model.shutdown_date,
                "successor": model.successor,
                "routed_to": chain[-1].id if chain else (model.id if status == DEPRECATED else None),
            }
        )
    return warnings


def catalog_review_list() -> list[ModelCatalogEntry]:
    """Catalog models an upstream said it does not have (or a direct provider no longer lists), for staff."""
    return list(
        ModelCatalogEntry.objects.filter(review_flagged_at__isnull=False).order_by("-review_flagged_at")
    )


def catalog_direct_ids_check(*, provider: str, listed: list[str]) -> list[str]:
    """Compare a direct provider's own model list with the ids the catalog maps to it: every callable
    model whose id there is missing is flagged for staff review. Returns those catalog ids."""
    present = set(listed)
    entries = ModelCatalogEntry.objects.filter(providers__has_key=provider, is_active=True).exclude(
        status=RETIRED
    )
    missing = {
        entry.id: entry.providers[provider]
        for entry in entries
        if isinstance(entry.providers.get(provider), str) and entry.providers[provider] not in present
    }
    for model_id, native in missing.items():
        catalog_review_flag(model_ids=[model_id], note=f"{provider}'s model list no longer has {native}")
    return list(missing)


def catalog_direct_models_check(*, transport=None) -> dict[str, list[str]]:
    """Probe every configured direct provider's own model list (OpenAI's and Anthropic's GET /v1/models,
    Gemini's models.list; never a generation) and flag the catalog models whose direct id is gone.
    Returns provider -> the catalog ids flagged; a provider whose list could not be read fully is absent."""
    from monitoring.services import providers_probe_all

    from .providers import provider_configs

    configs = [c for name, c in provider_configs().items() if name not in (OPENROUTER, "demo")]
    result = providers_probe_all(configs=configs, transport=transport, with_models=True)
    return {
        probed["provider"]: catalog_direct_ids_check(provider=probed["provider"], listed=probed["models"])
        for probed in result["probed"]
        if probed.get("models") is not None
    }


def catalog_review_clear(*, model_ids: list[str]) -> int:
    """Staff handled these models: drop their review note and flag."""
    return ModelCatalogEntry.objects.filter(id__in=model_ids, review_flagged_at__isnull=False).update(
        review_note="", review_flagged_at=None
    )


def catalog_review_flag(*, model_ids: list[str], note: str) -> int:
    """Mark models for staff review (an upstream said it has no such model); returns how many were
    newly flagged. Already-flagged entries keep their first note and time."""
    ids = list(dict.fromkeys(m for m in model_ids if m))
    if not ids:
        return 0
    flagged = ModelCatalogEntry.objects.filter(id__in=ids, review_flagged_at__isnull=True).update(
        review_note=note[:300], review_flagged_at=timezone.now()
    )
    if flagged:
        logger.warning("catalog: %s flagged for review: %s", ", ".join(ids), note)
    return flagged


def _usd_per_token(value: Any) -> Decimal | None:
    """OpenRouter prices are strings of USD per token; negative means "varies" (routers)."""
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not price.is_finite() or price < 0:
        return None
    return price


# OpenRouter's optional pricing keys -> catalog fields. A missing (or "0") token component means
# OpenRouter prices it as the plain token, as empty does here; per-call and per-image are 0 then.
TOKEN_COMPONENTS = {
    "input_cache_read": "input_cache_read_price",
    "input_cache_write": "input_cache_write_price",
    "internal_reasoning": "internal_reasoning_price",
}
FLAT_COMPONENTS = {"request": "request_price", "image": "image_price"}


def _components(pricing: dict[str, Any]) -> dict[str, Decimal | None]:
    """The component prices of one OpenRouter `pricing` object, as catalog field values.

    OpenRouter lists no 1-hour cache write: the catalog's stays as staff or the seed set it."""
    found: dict[str, Decimal | None] = {}
    for key, name in TOKEN_COMPONENTS.items():
        price = _usd_per_token(pricing.get(key))
        found[name] = price if price else None
    for key, name in FLAT_COMPONENTS.items():
        found[name] = _usd_per_token(pricing.get(key)) or Decimal(0)
    return found


def _created(item: dict[str, Any], default):
    """OpenRouter's `created` (Unix seconds) as a datetime; `default` when absent or nonsense."""
    import datetime

    value = item.get("created")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return default


def _mode(item: dict[str, Any]) -> str:
    """OpenRouter lists embedding models with `architecture.output_modalities: ["embeddings"]`."""
    architecture = item.get("architecture") if isinstance(item.get("architecture"), dict) else {}
    outputs = architecture.get("output_modalities")
    if isinstance(outputs, list) and "embeddings" in outputs:
        return ModelCatalogEntry.Mode.EMBEDDING
    return ModelCatalogEntry.Mode.CHAT


@dataclass(slots=True)
class SyncReport:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    retired: int = 0  # no longer listed: marked retired (never deleted)
    reactivated: int = 0  # retired, and listed again
    aliases: int = 0  # Anthropic names of Claude models added as aliases


def _listed_date(value: Any) -> datetime.date | None:
    """OpenRouter's `expiration_date` ("2026-01-14", or a timestamp starting with the date); None when
    absent or unreadable."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _openrouter_id(entry: ModelCatalogEntry) -> str | None:
    """The id OpenRouter lists this entry under; None for entries it does not serve (local, direct-only)."""
    providers = entry.providers or {}
    if OPENROUTER not in providers or entry.id.startswith(OLLAMA_PREFIX):
        return None
    return providers.get(OPENROUTER) or entry.id


def catalog_sync_apply(*, payload: dict[str, Any]) -> SyncReport:
    """Fold OpenRouter's `GET /models` body into the catalog.

    Prices and context length of known models are refreshed; models OpenRouter lists that we do not
    know yet are added (served through OpenRouter). Staff choices (active flag, direct providers, ZDR,
    successor) are left alone. Entries with unusable prices (missing, negative, not a number) are skipped.

    Lifecycle: a listed `expiration_date` makes the model deprecated with that shutdown date; a model
    served through OpenRouter that the list no longer carries is marked retired (kept: usage rows and
    receipts name it), and one listed again is active again. An empty list is refused rather than
    retiring everything.
    """
    report = SyncReport()
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError("OpenRouter /models answer has no `data` list")
    if not data:
        raise ValueError("OpenRouter /models listed no models; the catalog is left as it is")
    now = timezone.now()
    listed = {item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)}
    with transaction.atomic():
        known = {entry.id: entry for entry in ModelCatalogEntry.objects.select_for_update()}
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "/" not in item["id"]:
                report.skipped += 1
                continue
            pricing = item.get("pricing") if isinstance(item.get("pricing"), dict) else {}
            prompt = _usd_per_token(pricing.get("prompt"))
            completion = _usd_per_token(pricing.get("completion"))
            if prompt is None or completion is None:
                report.skipped += 1
                continue
            context = item.get("context_length")
            context = context if isinstance(context, int) and context > 0 else 0
            components = _components(pricing)
            expires = _listed_date(item.get("expiration_date"))
            entry = known.get(item["id"])
            if entry is None:
                ModelCatalogEntry.objects.create(
                    id=item["id"][:200],
                    display_name=str(item.get("name") or "")[:200],
                    context_length=context,
                    prompt_price=prompt,
                    completion_price=completion,
                    providers={OPENROUTER: item["id"]},
                    status=DEPRECATED if expires else ACTIVE,
                    shutdown_date=expires,
                    synced_at=now,
                    mode=_mode(item),
                    created_at=_created(item, now),
                    **components,
                )
                report.created += 1
                continue
            entry.prompt_price, entry.completion_price, entry.synced_at = prompt, completion, now
            for name, value in components.items():
                setattr(entry, name, value)
            if context:
                entry.context_length = context
            if not entry.display_name and item.get("name"):
                entry.display_name = str(item["name"])[:200]
            if expires:
                entry.status, entry.shutdown_date = DEPRECATED, expires
            elif entry.status == RETIRED and _openrouter_id(entry) is not None:
                # Listed again: callable again (a date staff recorded for a deprecation is dropped too).
                entry.status, entry.shutdown_date = ACTIVE, None
                report.reactivated += 1
            entry.save(
                update_fields=[
                    "prompt_price",
                    "completion_price",
                    *components,
                    "context_length",
                    "display_name",
                    "status",
                    "shutdown_date",
                    "synced_at",
                    "updated_at",
                ]
            )
            report.updated += 1
        # Embedding models come from a second list; when it could not be read, none of them is gone.
        embeddings_listed = any(isinstance(item, dict) and _mode(item) == "embedding" for item in data)
        for entry in known.values():
            openrouter_id = _openrouter_id(entry)
            if openrouter_id is None or openrouter_id in listed or entry.id in listed:
                continue
            if entry.mode == "embedding" and not embeddings_listed:
                continue
            if entry.status != RETIRED:
                entry.status = RETIRED
                if entry.shutdown_date is None or entry.shutdown_date > now.date():
                    entry.shutdown_date = now.date()
                entry.save(update_fields=["status", "shutdown_date", "updated_at"])
                report.retired += 1
        report.aliases = catalog_aliases_sync()
    # Only known models can be cached (absent ones never are).
    catalog_cache_clear(model_ids=list(known))
    logger.info(
        "catalog sync: %s created, %s updated, %s skipped, %s retired, %s reactivated",
        report.created,
        report.updated,
        report.skipped,
        report.retired,
        report.reactivated,
    )
    return report


async def openrouter_models_fetch(*, path: str = "/models") -> dict[str, Any]:
    """OpenRouter's public model list (`GET /models`, or `/embeddings/models`), through the shared
    transport."""
    from django.conf import settings

    from . import transport
    from .providers.base import UpstreamRequest

    upstream = UpstreamRequest(
        method="GET",
        url=f"{settings.OPENROUTER_BASE_URL.rstrip('/')}{path}",
        headers={"accept": "application/json"},
    )
    response = await transport.send(
        upstream,
        provider=OPENROUTER,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        read_timeout=settings.UPSTREAM_READ_TIMEOUT,
    )
    if response.status != 200:
        raise ValueError(f"OpenRouter {path} answered HTTP {response.status}")
    try:
        return json.loads(response.body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise ValueError(f"OpenRouter {path} answered with a body that is not JSON") from None


def with_embedding_models(payload: dict[str, Any], embeddings: dict[str, Any]) -> dict[str, Any]:
    """OpenRouter's chat model list plus its embedding models (`GET /embeddings/models`), each of those
    marked as an embedding model, so the sync prices them and never takes them for gone."""
    listed = {item.get("id") for item in payload.get("data") or [] if isinstance(item, dict)}
    extra = []
    for item in embeddings.get("data") or [] if isinstance(embeddings, dict) else []:
        if isinstance(item, dict) and item.get("id") not in listed:
            architecture = item.get("architecture") if isinstance(item.get("architecture"), dict) else {}
            extra.append({**item, "architecture": {**architecture, "output_modalities": ["embeddings"]}})
    data = payload.get("data")
    return {**payload, "data": [*data, *extra]} if isinstance(data, list) else payload


def catalog_sync_from_openrouter() -> SyncReport:
    """Fetch OpenRouter's model list and fold it into the catalog (sync: for the Celery task)."""
    from asgiref.sync import async_to_sync

    from . import transport

    async def fetch() -> dict[str, Any]:
        try:
            payload = await openrouter_models_fetch()
            try:
                embeddings = await openrouter_models_fetch(path="/embeddings/models")
            except Exception as exc:  # the chat list alone still refreshes every chat price
                logger.warning("OpenRouter embedding models not fetched: %s", type(exc).__name__)
                embeddings = {}
            return with_embedding_models(payload, embeddings)
        finally:
            # This loop lives for one sync only; do not leave its pooled client behind.
            await transport.transport_close()

    return catalog_sync_apply(payload=async_to_sync(fetch)())
