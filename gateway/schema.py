"""OpenAPI for the async chat views: plain Django views, which drf-spectacular cannot see, are
described through schema-only DRF views that a postprocessing hook merges into the schema."""

from contextvars import ContextVar

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from .openai_format import ChatCompletionInput, LLMRequestInput, LLMResponseOutput

_ERROR = OpenApiResponse(description='`{"error": {"message", "type", "code"}}`')
_ERRORS = {
    400: _ERROR,
    401: _ERROR,
    402: OpenApiResponse(description="Not enough credits for the worst-case cost"),
    404: OpenApiResponse(description="Unknown model"),
    413: _ERROR,
    429: OpenApiResponse(description="The key's rate limit or spend cap (`Retry-After` says when to retry)"),
    502: OpenApiResponse(description="Every upstream attempt failed (`error.attempts` lists them)"),
    504: OpenApiResponse(description="Every upstream attempt timed out"),
}

_Completion = inline_serializer(
    "ChatCompletion",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "created": serializers.IntegerField(),
        "model": serializers.CharField(help_text="the model that answered"),
        "provider": serializers.CharField(help_text="the provider that answered"),
        "choices": serializers.ListField(child=serializers.DictField()),
        "usage": inline_serializer(
            "ChatCompletionUsage",
            {
                "prompt_tokens": serializers.IntegerField(),
                "completion_tokens": serializers.IntegerField(),
                "total_tokens": serializers.IntegerField(),
                "cost": serializers.FloatField(help_text="USD, a JSON number with the exact decimal digits"),
                "credits": serializers.FloatField(
                    help_text="credits charged, a JSON number with the exact decimal digits"
                ),
            },
        ),
    },
)


class _ChatCompletionsDoc(APIView):
    @extend_schema(
        operation_id="chat_completions",
        summary="OpenAI-compatible chat completion (SSE when `stream` is true)",
        request=ChatCompletionInput,
        responses={200: _Completion, **_ERRORS},
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class _LLMChatDoc(APIView):
    @extend_schema(
        operation_id="llm_chat",
        summary="The native call: LLMRequest in, LLMResponse out",
        request=LLMRequestInput,
        responses={200: LLMResponseOutput, **_ERRORS},
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


_building = ContextVar("gateway_schema_building", default=False)


def add_chat_endpoints(result, generator, request, public):
    """drf-spectacular postprocessing hook: merge the async chat endpoints into the schema."""
    if _building.get():
        # The nested generator runs the hooks too.
        return result
    token = _building.set(True)
    try:
        extra = _chat_schema()
    finally:
        _building.reset(token)
    result.setdefault("paths", {}).update(extra.get("paths", {}))
    for section, items in extra.get("components", {}).items():
        result.setdefault("components", {}).setdefault(section, {}).update(items)
    return result


def _chat_schema() -> dict:
    return SchemaGenerator(
        patterns=[
            path("v1/chat/completions", _ChatCompletionsDoc.as_view()),
            path("api/llm/chat", _LLMChatDoc.as_view()),
        ]
    ).get_schema(request=None, public=True)
