"""ASGI entry point: `uvicorn smartspec.asgi:application`.

Static files are served by Django's own ASGI static handler, so a single
process serves the dashboard's assets without a separate web server.

The API faces that callers reach with an API key (chat completions, Messages,
Responses, embeddings, the native call) are served by `smartspec.lean.LeanApi`:
the same async views, without Django's request handler, its signals and its
middleware (sessions, CSRF, auth, messages, security headers), which are
sync-only in Django and cost hops to a worker thread per request. Its database
steps run on their own shared threads (gateway.db). A request to those paths
that carries cookies (a dashboard session) goes to the full site.
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

_site = ASGIStaticFilesHandler(get_asgi_application())

# Importing the views now also imports the providers and the HTTP client: Django would do it on the
# first request, which then waits a second or more while every module loads.
from django.urls import get_resolver  # noqa: E402

from gateway import anthropic_views, responses_views, views  # noqa: E402
from gateway.runtime import lifespan  # noqa: E402  (needs the apps loaded above)

from .lean import LeanApi  # noqa: E402

get_resolver().resolve("/v1/chat/completions")

_api = LeanApi(
    {
        "/v1/chat/completions": views.chat_completions,
        "/v1/embeddings": views.embeddings,
        "/v1/messages": anthropic_views.messages_create,
        "/v1/messages/count_tokens": anthropic_views.messages_count_tokens,
        "/v1/responses": responses_views.responses_create,
        "/api/llm/chat": views.llm_chat,
    }
)


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        # Start-up and shutdown of the serving process: every started call is settled before it exits.
        return await lifespan(scope, receive, send)
    if scope["type"] == "http" and _api.serves(scope):
        return await _api(scope, receive, send)
    return await _site(scope, receive, send)
