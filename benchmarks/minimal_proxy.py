"""S0b: the ceiling of our stack — a minimal Django async proxy.

One async view forwards the body to the upstream with the same HTTP client
the gateway uses (httpx over the aiohttp transport), no auth, no billing:

    UPSTREAM_URL=http://127.0.0.1:9100/v1/chat/completions \\
        uvicorn benchmarks.minimal_proxy:application --port 9101
"""

import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

import httpx  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from httpx_aiohttp import AiohttpTransport  # noqa: E402

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9100/v1/chat/completions")
_client: httpx.AsyncClient | None = None


def _get_client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            transport=AiohttpTransport(),
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=1000),
        )
    return _client


@csrf_exempt
async def proxy(request):
    body = request.body
    client = _get_client()
    if b'"stream": true' in body or b'"stream":true' in body:
        upstream = await client.send(
            client.build_request(
                "POST", UPSTREAM_URL, content=body, headers={"content-type": "application/json"}
            ),
            stream=True,
        )

        async def relay():
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingHttpResponse(relay(), content_type="text/event-stream")
    upstream = await client.post(UPSTREAM_URL, content=body, headers={"content-type": "application/json"})
    return HttpResponse(upstream.content, status=upstream.status_code, content_type="application/json")


urlpatterns = [path("v1/chat/completions", proxy)]
application = get_asgi_application()
