"""Settings, all read from the environment (and `.env`) with django-environ.

Defaults make a fresh clone run with nothing else installed: SQLite under
`var/`, the local-memory cache and eager Celery. `REDIS_URL` moves the cache
and Celery onto Redis; `DATABASE_URL` moves the data onto PostgreSQL.
"""

import os
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .urlsafety import UnsafeURL, base_url_validate

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=True) and (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))


def env_str(name: str, default: str = "") -> str:
    """A string setting where an empty value (`NAME=` in .env) means "use the default"."""
    return env.str(name, default="") or default


def env_int_or_none(name: str) -> int | None:
    """An optional whole number where unset or empty means "none"."""
    value = env_str(name)
    return int(value) if value else None


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-only-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "gateway",
    "billing",
    "monitoring",
]

MIDDLEWARE = [
    "smartspec.middleware.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "smartspec.middleware.content_security_policy_middleware",
    "smartspec.middleware.api_error_middleware",
]

ROOT_URLCONF = "smartspec.urls"
WSGI_APPLICATION = "smartspec.wsgi.application"
ASGI_APPLICATION = "smartspec.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------
(BASE_DIR / "var").mkdir(exist_ok=True)
DATABASES = {
    "default": env.db_url_config(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'smartspec.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes writers queue for the lock instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# Connections are checked before use (after a database restart every pooled or persistent one is
# dead), so a dead connection is replaced instead of failing the request (or gateway DB step) that
# drew it. On PostgreSQL the project's backend (smartspec.postgresql) checks a pooled connection
# without a round trip, and sends the empty query only to one that looks closed.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "smartspec.postgresql"
# The hot path's statements (hold, settle, usage rows) are prepared once per pooled connection, so
# PostgreSQL does not parse and plan them for every call (smartspec.postgresql.prepared_cursor).
# Django turns psycopg's prepared statements off; its own cursors bind on the client and never
# prepare, so the threshold reaches only the cursors that ask for it. Off behind a pooler that cannot
# carry prepared statements (PgBouncer in transaction mode before 1.21).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "smartspec.postgresql" and DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
# PostgreSQL: a psycopg pool per process. An async worker may hold many calls open at once; each of
# their short DB steps borrows a connection and gives it back (gateway.db), so the server sees at
# most DB_POOL_MAX_SIZE connections per worker instead of one per open call. 0 turns the pool off.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=16)
if DATABASES["default"]["ENGINE"] == "smartspec.postgresql" and DB_POOL_MAX_SIZE > 0:
    from psycopg_pool.base import AttemptWithBackoff

    # The pool refills itself after an outage, retrying every ~0.5 s: psycopg's default doubles the
    # wait after each failure (1, 2, 4, 8, 16 s...), which kept the pool empty (every request 503,
    # /readyz unavailable) for 20 s after a 10 s outage had ended.
    AttemptWithBackoff.INITIAL_DELAY = env.float("DB_POOL_RECONNECT_SECONDS", default=0.5)
    AttemptWithBackoff.DELAY_BACKOFF = 1.0
    # A database host that does not answer fails a connect in seconds, not the OS's minutes.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
        "DB_CONNECT_TIMEOUT", default=5
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
# The gateway's DB steps run as at most this many jobs per worker at once (gateway.db), each taking
# the next queued step until none is left. 0 runs them on Django's per-request thread. Two, not one
# per pooled connection: every statement beyond a few at once waits inside PostgreSQL for the same
# hot rows (an account's), whose CPU per call then grows by a third, and a job that runs step after
# step wakes no thread per step (docs/PERFORMANCE.md, round 5). Keep it below DB_POOL_MAX_SIZE.
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=2)
# Allocations between two collections of Python's youngest generation in a serving process (its
# default is 700; the older ones then follow every 50 collections, not 10); start-up's objects are
# frozen out of collections. 0 keeps Python's defaults.
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", default=20_000)
# The usage row and provider health of a call are written after its answer is sent (gateway.aftercall);
# false writes them before (the test suite's default, like eager Celery).
GATEWAY_DEFER_RECORDS = env.bool("GATEWAY_DEFER_RECORDS", default=True)
# How long the deferred writer gathers records before each batch.
GATEWAY_RECORDS_DELAY_MS = env.int("GATEWAY_RECORDS_DELAY_MS", default=20)
# PostgreSQL: a call's hold commits without waiting for its WAL flush (the settle's durable commit
# flushes it before any charge); false makes every hold a durable commit of its own.
HOLD_ASYNC_COMMIT = env.bool("HOLD_ASYNC_COMMIT", default=True)
# How long a call's hold may stay open before the expiry job gives it back (a crashed worker's);
# a stream's lives longer, as a long answer must not outlive its hold.
CALL_HOLD_TTL_SECONDS = env.int("CALL_HOLD_TTL_SECONDS", default=900)
STREAM_HOLD_TTL_SECONDS = env.int("STREAM_HOLD_TTL_SECONDS", default=3600)
# Settles that could not commit (the database was down) wait here, on this host, until replayed.
SETTLE_JOURNAL_DIR = env_str("SETTLE_JOURNAL_DIR", str(BASE_DIR / "var" / "settle-journal"))
# The shared-cache mark that a hold's settle is journaled on some host (keeps expiry off it).
SETTLE_PENDING_KEY_PREFIX = env_str("SETTLE_PENDING_KEY_PREFIX", "gateway:settle-pending")
# At shutdown, how long a worker waits for the calls it started to be settled (or journaled).
SHUTDOWN_SETTLE_SECONDS = env.float("SHUTDOWN_SETTLE_SECONDS", default=25.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "smartspec.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # One pool per process (smartspec.cache); a burst of calls waits for a connection
            # instead of failing once the pool is full.
            "OPTIONS": {
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": env.int("REDIS_POOL_MAX_SIZE", default=64),
                "timeout": 5,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
# Periodic jobs; each app appends its own entries (see the apps' `tasks.py`).
CELERY_BEAT_SCHEDULE: dict = {}

# --- Auth and the web -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Mail (password resets). The embedded default prints mails to the console; production sets an
# SMTP backend ("django.core.mail.backends.smtp.EmailBackend") and its host and credentials.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25) if env_str("EMAIL_PORT") else 25
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS") if env_str("EMAIL_USE_TLS") else False
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "SmartSpec Pro <noreply@localhost>")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Requests larger than this get 413 (LLM prompts can be long; images are base64).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BYTES", default=8 * 1024 * 1024)
# /readyz answers within this many seconds whatever the database or Redis do (a hung check is "unavailable").
READYZ_TIMEOUT_SECONDS = env.float("READYZ_TIMEOUT_SECONDS", default=0.8)
# Deepest nesting of a JSON body (smartspec/jsonbody.py); no request of any API nests past ~10.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)

# Every HTML page: scripts only from our own static files (the dashboard's JS and the vendored
# Chart.js; no inline script, no eval), no plugins, no framing, forms post only here. Inline styles
# stay allowed (Django admin's widgets and the API docs set some); they cannot run code.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

# Sign-in throttling (smartspec.login_throttle): failed attempts per account and per address within
# the window, after which that account / address is locked out for the rest of it.
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
LOGIN_THROTTLE_KEY_PREFIX = env_str("LOGIN_THROTTLE_KEY_PREFIX", "ss:login")

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Prometheus scrapes each host's workers directly, inside the network (see docs/OPERATIONS.md).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gateway.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["smartspec.jsonbody.StrictJSONParser"],
    "EXCEPTION_HANDLER": "smartspec.errors.drf_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["gateway.limits.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SmartSpec Pro API",
    "DESCRIPTION": "Self-hosted LLM gateway with prepaid credits.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # The chat hot paths are async Django views; this documents them.
        "gateway.schema.add_chat_endpoints",
    ],
}
# API keys are stored as HMAC-SHA256 under this secret; rotating it invalidates every key.
API_KEY_SECRET = env_str("API_KEY_SECRET", SECRET_KEY)
# Seconds a catalog model (prices, providers) is served from the cache; edits in admin and the sync
# drop it at once.
CATALOG_CACHE_SECONDS = env.int("CATALOG_CACHE_SECONDS", default=300)
# Seconds a found API key is served from the shared cache; revocation takes effect at once anyway.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=60)

# --- Providers and routing (DESIGN.md "Configuration") ----------------------
USE_OPENROUTER = env.bool("USE_OPENROUTER", default=True)
OPENROUTER_API_KEY = env_str("OPENROUTER_API_KEY")
OPENROUTER_SITE_URL = env_str("OPENROUTER_SITE_URL")
OPENROUTER_SITE_NAME = env_str("OPENROUTER_SITE_NAME", "SmartSpec Pro")
OPENROUTER_BASE_URL = env_str("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
ZAI_API_KEY = env_str("ZAI_API_KEY")
ZAI_BASE_URL = env_str("ZAI_BASE_URL", "https://api.z.ai/api/paas/v4")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "https://api.openai.com/v1")
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
GOOGLE_API_KEY = env_str("GOOGLE_API_KEY")
GEMINI_BASE_URL = env_str("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com/v1beta")
GROQ_API_KEY = env_str("GROQ_API_KEY")
GROQ_BASE_URL = env_str("GROQ_BASE_URL", "https://api.groq.com/openai/v1")
OLLAMA_BASE_URL = env_str("OLLAMA_BASE_URL")
# Base URLs are where our provider keys are sent: refuse metadata/link-local hosts always, and
# private/loopback hosts outside DEBUG unless allowed (a self-hosted Ollama on the LAN).
# Empty (`ALLOW_PRIVATE_BASE_URLS=` in .env) means the default, DEBUG, as for every other setting.
ALLOW_PRIVATE_BASE_URLS = env.bool("ALLOW_PRIVATE_BASE_URLS") if env_str("ALLOW_PRIVATE_BASE_URLS") else DEBUG


def base_urls_validate(urls: dict[str, str], *, allow_private: bool) -> None:
    """Refuse to start with an unsafe provider base URL; names are resolved and every address
    checked (smartspec.urlsafety; the transport checks again on every connect)."""
    for name, url in urls.items():
        if url:
            try:
                base_url_validate(url, allow_private=allow_private, resolve=True)
            except UnsafeURL as exc:
                raise ImproperlyConfigured(f"{name}: {exc}") from None


base_urls_validate(
    {
        name: globals()[name]
        for name in (
            "OPENROUTER_BASE_URL",
            "ZAI_BASE_URL",
            "OPENAI_BASE_URL",
            "ANTHROPIC_BASE_URL",
            "GEMINI_BASE_URL",
            "GROQ_BASE_URL",
            "OLLAMA_BASE_URL",
        )
        # The defaults are the providers' public names; only a URL set here is resolved at start-up.
        if env_str(name)
    },
    allow_private=ALLOW_PRIVATE_BASE_URLS,
)
DEFAULT_BUDGET_PRIORITY = env_str("DEFAULT_BUDGET_PRIORITY", "balanced")
DEFAULT_TEMPERATURE = env.float("DEFAULT_TEMPERATURE", default=0.7)
DEFAULT_MAX_TOKENS = env.int("DEFAULT_MAX_TOKENS", default=4000)
# Bounds of one chat request (400 beyond them); MAX_REQUEST_BYTES above bounds its size (413).
MAX_MESSAGES = env.int("MAX_MESSAGES", default=2000)
MAX_OUTPUT_TOKENS = env.int("MAX_OUTPUT_TOKENS", default=1_000_000)
# Limits a new API key starts with (gateway.limits); empty means none. Staff change them per key
# in admin, users on the dashboard's keys page. Spend caps are in whole credits.
KEY_DEFAULT_REQUESTS_PER_MINUTE = env_int_or_none("KEY_DEFAULT_REQUESTS_PER_MINUTE")
KEY_DEFAULT_TOKENS_PER_MINUTE = env_int_or_none("KEY_DEFAULT_TOKENS_PER_MINUTE")
KEY_DEFAULT_CREDITS_PER_DAY = env_int_or_none("KEY_DEFAULT_CREDITS_PER_DAY")
KEY_DEFAULT_CREDITS_PER_MONTH = env_int_or_none("KEY_DEFAULT_CREDITS_PER_MONTH")
LIMITS_KEY_PREFIX = env_str("LIMITS_KEY_PREFIX", "ss:limit")
# Seconds allowed to connect to and to hear from an upstream.
UPSTREAM_CONNECT_TIMEOUT = env.float("UPSTREAM_CONNECT_TIMEOUT", default=5.0)
UPSTREAM_READ_TIMEOUT = env.float("UPSTREAM_READ_TIMEOUT", default=120.0)
# Total seconds one upstream attempt may take, however the bytes trickle in (the read timeout only
# bounds the gap between two reads): a plain call to its last byte, a stream to its first event.
UPSTREAM_DEADLINE_SECONDS = env.float("UPSTREAM_DEADLINE_SECONDS", default=300.0)
# Total seconds a stream may run (kept below STREAM_HOLD_TTL_SECONDS, so its hold outlives it).
UPSTREAM_STREAM_MAX_SECONDS = env.float("UPSTREAM_STREAM_MAX_SECONDS", default=1800.0)
# Per-provider overrides (`<PROVIDER>_CONNECT_TIMEOUT`, `<PROVIDER>_TIMEOUT` for reads,
# `<PROVIDER>_DEADLINE_SECONDS` for the attempt's total): a slow local
# model may need minutes while a hosted API that has not answered in 30 s is better failed over.
PROVIDER_TIMEOUTS: dict[str, dict[str, float]] = {}
for _name in ("openrouter", "zai", "openai", "anthropic", "google", "groq", "ollama"):
    _limits = {}
    if env_str(f"{_name.upper()}_CONNECT_TIMEOUT"):
        _limits["connect"] = env.float(f"{_name.upper()}_CONNECT_TIMEOUT")
    if env_str(f"{_name.upper()}_TIMEOUT"):
        _limits["read"] = env.float(f"{_name.upper()}_TIMEOUT")
    if env_str(f"{_name.upper()}_DEADLINE_SECONDS"):
        _limits["deadline"] = env.float(f"{_name.upper()}_DEADLINE_SECONDS")
    if _limits:
        PROVIDER_TIMEOUTS[_name] = _limits
# Circuit breaker: a provider marked down (HEALTH_DOWN_AFTER failures in a row) gets no traffic for
# this long, then one trial call at a time until HEALTH_UP_AFTER successes close it again.
CIRCUIT_COOLDOWN_SECONDS = env.float("CIRCUIT_COOLDOWN_SECONDS", default=30.0)
# Catalog prices and lifecycle (deprecated, retired, listed again) follow OpenRouter's list, daily.
CELERY_BEAT_SCHEDULE["gateway-catalog-sync"] = {
    "task": "gateway.catalog_sync",
    "schedule": env.int("CATALOG_SYNC_SECONDS", default=24 * 3600),
}
# Responses API: how long a `store: true` response is kept for `previous_response_id` / GET.
RESPONSES_RETENTION_DAYS = env.int("RESPONSES_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE["gateway-responses-purge"] = {"task": "gateway.responses_purge", "schedule": 3600}
# The direct providers' own model lists (a list-models probe each) against the ids the catalog maps to.
CELERY_BEAT_SCHEDULE["gateway-catalog-direct-check"] = {
    "task": "gateway.catalog_direct_check",
    "schedule": env.int("CATALOG_SYNC_SECONDS", default=24 * 3600),
}

# --- Monitoring (provider health) -------------------------------------------
# Rolling window of attempts per provider/model: the last N samples no older than this.
HEALTH_WINDOW_SECONDS = env.int("HEALTH_WINDOW_SECONDS", default=900)
HEALTH_WINDOW_SIZE = env.int("HEALTH_WINDOW_SIZE", default=200)
# Marked down after this many failures in a row, up again after this many successes (probes count).
HEALTH_DOWN_AFTER = env.int("HEALTH_DOWN_AFTER", default=3)
HEALTH_UP_AFTER = env.int("HEALTH_UP_AFTER", default=2)
# Failures in a row mark a provider down only once this many different callers (a probe counts as
# one) had them: one caller's own failing requests cannot open the circuit for everyone.
CIRCUIT_MIN_CALLERS = env.int("CIRCUIT_MIN_CALLERS", default=2)
# A success rate is only judged over at least this many real-traffic samples.
HEALTH_MIN_SAMPLES = env.int("HEALTH_MIN_SAMPLES", default=5)
HEALTH_KEY_PREFIX = env("HEALTH_KEY_PREFIX", default="ss:health")
# One scheduler (beat) runs these; probes expire rather than pile up while no worker is listening.
CELERY_BEAT_SCHEDULE["monitoring.probe_providers"] = {
    "task": "monitoring.probe_providers",
    "schedule": env.float("PROBE_INTERVAL_SECONDS", default=60.0),
    "options": {"expires": 55},
}
CELERY_BEAT_SCHEDULE["monitoring.rollup_daily_usage"] = {
    "task": "monitoring.rollup_daily_usage",
    "schedule": 600.0,
    "options": {"expires": 590},
}

# --- Credits ------------------------------------------------------------------
# 1 USD of usage costs this many credits (usage is charged at cost), and top-ups carry this markup
# in percent: credits = floor(payment_usd / (1 + markup/100) x CREDITS_PER_USD); $100 -> 86,956.
CREDITS_PER_USD = env.int("CREDITS_PER_USD", default=1000)
if CREDITS_PER_USD < 1:
    raise ImproperlyConfigured("CREDITS_PER_USD must be a positive whole number.")
TOPUP_MARKUP_PERCENT = env_str("TOPUP_MARKUP_PERCENT", "15")
try:
    _markup = Decimal(TOPUP_MARKUP_PERCENT)
except ArithmeticError:
    raise ImproperlyConfigured("TOPUP_MARKUP_PERCENT must be a number of percent, e.g. 15.") from None
if not _markup.is_finite() or not 0 <= _markup < 1000 or _markup.as_tuple().exponent < -3:
    raise ImproperlyConfigured("TOPUP_MARKUP_PERCENT must be between 0 and 1000, at most 3 decimals.")

# --- Reconciliation (monitoring/reconciliation.py) ---------------------------
# Our charge for each OpenRouter call against OpenRouter's own record (GET /generation?id=): a
# difference within this percent of OpenRouter's figure (and never less than this many USD) is a match.
RECONCILE_TOLERANCE_PERCENT = Decimal(env_str("RECONCILE_TOLERANCE_PERCENT", "1"))
RECONCILE_TOLERANCE_USD = Decimal(env_str("RECONCILE_TOLERANCE_USD", "0.000001"))
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=600)
RECONCILE_BATCH = env.int("RECONCILE_BATCH", default=200)  # calls checked per run, at most
RECONCILE_RATE_PER_SECOND = env.float("RECONCILE_RATE_PER_SECOND", default=5.0)  # requests to OpenRouter
RECONCILE_DELAY_SECONDS = env.int("RECONCILE_DELAY_SECONDS", default=60)  # OpenRouter records a call late
RECONCILE_MAX_AGE_DAYS = env.int("RECONCILE_MAX_AGE_DAYS", default=7)
RECONCILE_MAX_TRIES = env.int("RECONCILE_MAX_TRIES", default=8)  # "no record" this often: unavailable
CELERY_BEAT_SCHEDULE["monitoring.reconcile_usage"] = {
    "task": "monitoring.reconcile_usage",
    "schedule": RECONCILE_INTERVAL_SECONDS,
    "options": {"expires": max(1, RECONCILE_INTERVAL_SECONDS - 10)},
}

# --- Stripe -----------------------------------------------------------------
# Whole credits every new account starts with, as one ledger grant (sign-up page and
# `issue_api_key --create-user`). The embedded default (DEBUG on) gives 1,000 so a fresh clone's
# first call is paid for; with DEBUG off the default is 0: production sets what it means to give.
SIGNUP_CREDITS = env_int_or_none("SIGNUP_CREDITS")
if SIGNUP_CREDITS is None:
    SIGNUP_CREDITS = 1000 if DEBUG else 0
if SIGNUP_CREDITS < 0:
    raise ImproperlyConfigured("SIGNUP_CREDITS must be 0 or more whole credits.")
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
# Holds left by a crashed worker go back to the user; the ledger is proved against the balances.
# The gateway's expiry job replays settles journaled during a database outage first, and never expires
# a hold whose settle is still waiting (gateway/settle_journal.py).
HOLD_EXPIRY_INTERVAL_SECONDS = env.int("HOLD_EXPIRY_INTERVAL_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["billing-holds-expire"] = {
    "task": "gateway.holds_expire",
    "schedule": HOLD_EXPIRY_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["billing-ledger-reconcile"] = {"task": "billing.ledger_reconcile", "schedule": 3600}

# --- Prometheus metrics (smartspec/metrics.py, GET /metrics) ----------------------------------------
# The bearer token a scraper sends. Unset: /metrics answers 403, except to loopback while DEBUG is on.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Where every worker process writes its figures, so that a scrape of any worker sums them. Must be set
# in the environment before the server forks its workers, and emptied at each start (`make run` does
# both). Unset: each process keeps its own figures (right for one worker only).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    PROMETHEUS_MULTIPROC_DIR = str(BASE_DIR / PROMETHEUS_MULTIPROC_DIR)  # a relative path: under the project
    # prometheus-client reads the variable itself when first imported (a value from .env, too).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
else:
    # prometheus-client turns multiprocess mode on when the variable merely exists, even empty (as
    # `.env` copies it), and would then write its files into the working directory.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

# --- Logging ----------------------------------------------------------------
LOG_DIR = Path(env_str("LOG_DIR", str(BASE_DIR / "logs")))
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "smartspec.logging.RequestIdFilter"},
        "redact": {"()": "smartspec.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id", "redact"],
        },
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(LOG_DIR / "smartspec.log"),
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
