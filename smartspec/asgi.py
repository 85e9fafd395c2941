"""ASGI entry point: `uvicorn smartspec.asgi:application`.

Static files are served by Django's own ASGI static handler, so a single
process serves the dashboard's assets without a separate web server.

`POST /v1/chat/completions` (API keys only, no session, no CSRF, no HTML) goes
to a second Django handler that runs only the project's async middleware. The
dashboard's middleware (sessions, CSRF, auth, messages, security headers) is
sync-only in Django: in an async handler each of them costs one or two hops to
a worker thread per request, which was most of what the gateway added to a
provider call (docs/PERFORMANCE.md). It also runs without Django's per-request
thread: its database steps have their own shared threads.
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

# Paths served by API keys alone; every other path gets the full middleware.
API_KEY_PATHS = frozenset({"/v1/chat/completions"})
API_KEY_MIDDLEWARE = (
    "smartspec.middleware.request_id_middleware",
    "smartspec.middleware.api_error_middleware",
)


class ApiKeyPathHandler(ASGIHandler):
    """Django's ASGI handler with only the middleware an API-key call needs (both async-native)."""

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE; this runs once, at startup.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path in API_KEY_MIDDLEWARE]
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full

    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, i.e. a new thread per request for
        # its sync steps, started and joined every time. The gateway's DB steps run on a shared pool
        # (gateway.db); what is left (the request signals, response.close) is a few microseconds on
        # asgiref's one shared thread.
        await self.handle(scope, receive, send)


_site = ASGIStaticFilesHandler(get_asgi_application())
_api = ApiKeyPathHandler()
# Import the URLconf (and with it the views, providers and HTTP client) now: Django does it on the
# first request, which then waits a second or more while every module loads.
get_resolver().resolve("/v1/chat/completions")

from gateway.runtime import lifespan  # noqa: E402  (needs the apps loaded above)


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        # Start-up and shutdown of the serving process: every started call is settled before it exits.
        return await lifespan(scope, receive, send)
    if scope["type"] == "http" and scope["path"] in API_KEY_PATHS:
        return await _api(scope, receive, send)
    return await _site(scope, receive, send)
