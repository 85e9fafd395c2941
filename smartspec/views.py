"""Project-level views: health probes, sign-up and the JSON error handlers."""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_GET

from billing.services import signup_credits_grant

from .errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    ServerError,
    error_response_for,
    is_api_path,
)
from .forms import SignupForm, ThrottledAuthenticationForm
from .metrics import metrics_response

logger = logging.getLogger(__name__)


@require_GET
def favicon(request):
    from django.templatetags.static import static

    return redirect(static("favicon.svg"), permanent=True)


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def metrics(request):
    """Prometheus' scrape (smartspec/metrics.py): the bearer METRICS_TOKEN, or loopback under DEBUG."""
    return metrics_response(request)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class NotConfigured(Exception):
    """A dependency this deployment does not use: reported as such, never as "ok"."""


def _check_redis() -> None:
    from django.conf import settings

    if not settings.REDIS_URL:
        raise NotConfigured
    import redis

    timeout = settings.READYZ_TIMEOUT_SECONDS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


# Readiness answers within READYZ_TIMEOUT_SECONDS whatever the backing services do: each check runs
# on a probe thread of its own and is reported "unavailable" if it has not finished in time (a check
# still hanging from an earlier probe is not started twice).
_probe_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
_running: dict[str, Future] = {}
_running_lock = threading.Lock()


def _database_probe() -> None:
    try:
        _check_database()
    finally:
        # A probe thread serves no request: hand its connection back (to the pool) at once.
        connection.close()


def _probe(name: str, check) -> Future:
    with _running_lock:
        running = _running.get(name)
        if running is not None and not running.done():
            return running
        future = _probe_threads.submit(check)
        _running[name] = future
        return future


@require_GET
def readyz(request):
    from django.conf import settings

    started = time.monotonic()
    budget = settings.READYZ_TIMEOUT_SECONDS
    futures = {
        name: _probe(name, check) for name, check in (("database", _database_probe), ("redis", _check_redis))
    }
    checks, ok = {}, True
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, budget - (time.monotonic() - started)))
            checks[name] = "ok"
        except NotConfigured:
            checks[name] = "not configured"  # the embedded default: local-memory cache, eager tasks
        except FutureTimeout:
            logger.warning("readiness check %s did not answer within %g s", name, budget)
            checks[name] = "unavailable"
            ok = False
        except Exception as exc:  # any failure means not ready; the class name is enough
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
            ok = False
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


class LoginView(auth_views.LoginView):
    """Django's login page with the throttled form; a locked-out attempt is a 429."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled():
            response.status_code = 429
        return response


def signup(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        signup_credits_grant(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("dashboard")
    return render(request, "registration/signup.html", {"form": form})


def bad_request(request, exception=None):
    if is_api_path(request.path):
        if isinstance(exception, RequestDataTooBig):
            return error_response_for(request.path, RequestTooLarge())
        return error_response_for(request.path, InvalidRequest())
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if is_api_path(request.path):
        return error_response_for(request.path, Forbidden())
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if is_api_path(request.path):
        return error_response_for(
            request.path, NotFound(f"No such endpoint: {request.method} {request.path}")
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_path(request.path):
        return error_response_for(request.path, ServerError())
    return defaults.server_error(request)
