"""Settings for the test suite: the real settings with test-safe defaults.

A developer's `.env` is ignored so provider keys on the machine never leak into
tests; `DATABASE_URL`/`REDIS_URL` from the environment still apply (CI points
them at PostgreSQL and Redis).
"""

import os
import tempfile
import uuid

os.environ["DJANGO_READ_DOT_ENV_FILE"] = "false"
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("API_KEY_SECRET", "test-api-key-secret")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("ALLOWED_HOSTS", "*")
# Stand-in upstreams listen on 127.0.0.1.
os.environ.setdefault("ALLOW_PRIVATE_BASE_URLS", "true")
# Tests write the catalog straight through the ORM; the tests of the cache turn it on themselves.
os.environ.setdefault("CATALOG_CACHE_SECONDS", "0")
# Usage rows and health written before the answer, as eager Celery runs tasks inline; the tests of
# the deferred writer turn it on themselves.
os.environ.setdefault("GATEWAY_DEFER_RECORDS", "false")
# Each run journals its own settles (the suite's live servers inherit the folder).
os.environ.setdefault("SETTLE_JOURNAL_DIR", tempfile.mkdtemp(prefix="ss-settle-journal-"))
# and marks them under its own prefix: hold ids restart with each test database, and a mark left by
# an earlier run against the same Redis would keep this run's hold of that id from expiring.
os.environ.setdefault("SETTLE_PENDING_KEY_PREFIX", f"test-settle-pending-{uuid.uuid4().hex[:12]}")
# The breaker's mechanics are tested with one caller; the fairness tests set 2 (the default) themselves.
os.environ.setdefault("CIRCUIT_MIN_CALLERS", "1")
os.environ.setdefault("LOG_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test-logs"))

# Sign-in throttle counters of one run (and its live servers) never meet another's in Redis.
os.environ.setdefault("LOGIN_THROTTLE_KEY_PREFIX", f"test-login-{os.getpid()}-{os.urandom(4).hex()}")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
