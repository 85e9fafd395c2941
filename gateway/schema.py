"""OpenAPI for the async chat views: plain Django views, which drf-spectacular cannot see, are
described through schema-only DRF views that a postprocessing hook merges into the schema."""

from contextvars import ContextVar

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from .openai_format import ChatCompletionInput, EmbeddingsInput, LLMRequestInput, LLMResponseOutput

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


_MONEY = {
    "cost": serializers.FloatField(help_text="USD, a JSON number with the exact decimal digits"),
    "credits": serializers.FloatField(
        help_text="credits charged, a JSON number with the exact decimal digits"
    ),
}

_ResponseCreate = inline_serializer(
    "ResponseCreate",
    {
        "model": serializers.CharField(required=False, allow_null=True, help_text="vendor/model or auto"),
        "input": serializers.JSONField(
            help_text="a string, or items: message, function_call, function_call_output"
        ),
        "instructions": serializers.CharField(required=False, allow_null=True),
        "tools": serializers.ListField(
            child=serializers.DictField(), required=False, help_text="function tools"
        ),
        "tool_choice": serializers.JSONField(required=False),
        "parallel_tool_calls": serializers.BooleanField(required=False, allow_null=True),
        "max_output_tokens": serializers.IntegerField(required=False, allow_null=True, min_value=1),
        "temperature": serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2),
        "top_p": serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1),
        "reasoning": serializers.DictField(required=False, allow_null=True, help_text="{effort, summary}"),
        "text": serializers.DictField(
            required=False, allow_null=True, help_text="{format: {type, name, schema}}"
        ),
        "metadata": serializers.DictField(child=serializers.CharField(), required=False, allow_null=True),
        "stream": serializers.BooleanField(required=False, default=False),
        "store": serializers.BooleanField(required=False, default=True),
        "previous_response_id": serializers.CharField(required=False, allow_null=True),
        "user": serializers.CharField(required=False, allow_null=True),
    },
)
_Response = inline_serializer(
    "Response",
    {
        "id": serializers.CharField(),
        "object": serializers.CharField(),
        "created_at": serializers.IntegerField(),
        "status": serializers.CharField(),
        "model": serializers.CharField(),
        "provider": serializers.CharField(),
        "output": serializers.ListField(child=serializers.DictField()),
        "usage": inline_serializer(
            "ResponseUsage",
            {
                "input_tokens": serializers.IntegerField(),
                "input_tokens_details": serializers.DictField(),
                "output_tokens": serializers.IntegerField(),
                "output_tokens_details": serializers.DictField(),
                "total_tokens": serializers.IntegerField(),
                **_MONEY,
            },
        ),
    },
)
_Embeddings = inline_serializer(
    "EmbeddingList",
    {
        "object": serializers.CharField(),
        "data": serializers.ListField(child=serializers.DictField(), help_text="{object, index, embedding}"),
        "model": serializers.CharField(),
        "usage": inline_serializer(
            "EmbeddingUsage",
            {
                "prompt_tokens": serializers.IntegerField(),
                "total_tokens": serializers.IntegerField(),
                **_MONEY,
            },
        ),
    },
)


class _ResponsesDoc(APIView):
    @extend_schema(
        operation_id="responses_create",
        summary="OpenAI Responses API (typed SSE events when `stream` is true)",
        request=_ResponseCreate,
        responses={200: _Response, **_ERRORS},
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class _ResponseDetailDoc(APIView):
    @extend_schema(
        operation_id="responses_retrieve",
        summary="A stored response of the caller",
        responses={200: _Response, 401: _ERROR, 404: _ERROR},
        tags=["gateway"],
    )
    def get(self, request, response_id):  # pragma: no cover - documentation only
        raise NotImplementedError

    @extend_schema(
        operation_id="responses_delete",
        summary="Delete a stored response of the caller",
        responses={
            200: OpenApiResponse(description='{"id", "object": "response", "deleted": true}'),
            401: _ERROR,
            404: _ERROR,
        },
        tags=["gateway"],
    )
    def delete(self, request, response_id):  # pragma: no cover - documentation only
        raise NotImplementedError


class _EmbeddingsDoc(APIView):
    @extend_schema(
        operation_id="embeddings_create",
        summary="OpenAI embeddings (float or base64), billed like chat",
        request=EmbeddingsInput,
        responses={200: _Embeddings, **_ERRORS},
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


_ANTHROPIC_ERRORS = {
    status: OpenApiResponse(
        description='Anthropic\'s shape: `{"type": "error", "error": {"type", "message", "details": '
        '{"error_code"}}}`' + (f" ({doc.description})" if doc.description != _ERROR.description else "")
    )
    for status, doc in {**_ERRORS, 529: OpenApiResponse(description="Every provider is cooling down")}.items()
}
_MessageCreate = inline_serializer(
    "MessageCreate",
    {
        "model": serializers.CharField(
            help_text="a catalog id or Anthropic's own id (claude-sonnet-4-5, ...)"
        ),
        "max_tokens": serializers.IntegerField(min_value=1),
        "messages": serializers.ListField(
            child=serializers.DictField(),
            help_text="{role: user|assistant, content: a string or blocks (text, image, document, "
            "tool_use, tool_result, thinking)}",
        ),
        "system": serializers.JSONField(required=False, help_text="a string or text blocks"),
        "stop_sequences": serializers.ListField(child=serializers.CharField(), required=False),
        "temperature": serializers.FloatField(required=False, min_value=0, max_value=1),
        "top_p": serializers.FloatField(required=False, min_value=0, max_value=1),
        "top_k": serializers.IntegerField(required=False, min_value=0),
        "tools": serializers.ListField(child=serializers.DictField(), required=False),
        "tool_choice": serializers.DictField(required=False, help_text="{type: auto|any|tool|none, name?}"),
        "thinking": serializers.DictField(
            required=False, help_text="{type: enabled, budget_tokens} or adaptive"
        ),
        "output_config": serializers.DictField(required=False, help_text="{effort, format}"),
        "metadata": serializers.DictField(required=False, help_text="{user_id}"),
        "stream": serializers.BooleanField(required=False, default=False),
        "fallback_models": serializers.ListField(child=serializers.CharField(), required=False),
        "provider": serializers.DictField(
            required=False, help_text="{sort, data_collection, zdr, max_price}"
        ),
    },
)
_Message = inline_serializer(
    "Message",
    {
        "id": serializers.CharField(),
        "type": serializers.CharField(),
        "role": serializers.CharField(),
        "model": serializers.CharField(help_text="the model that answered"),
        "provider": serializers.CharField(help_text="the provider that answered"),
        "content": serializers.ListField(child=serializers.DictField()),
        "stop_reason": serializers.CharField(),
        "usage": inline_serializer(
            "MessageUsage",
            {
                "input_tokens": serializers.IntegerField(),
                "output_tokens": serializers.IntegerField(),
                "cache_creation_input_tokens": serializers.IntegerField(),
                "cache_read_input_tokens": serializers.IntegerField(),
                **_MONEY,
            },
        ),
    },
)


class _MessagesDoc(APIView):
    @extend_schema(
        operation_id="messages_create",
        summary="Anthropic Messages API (`x-api-key` or Bearer; its SSE events when `stream` is true)",
        request=_MessageCreate,
        responses={200: _Message, **_ANTHROPIC_ERRORS},
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class _MessagesCountDoc(APIView):
    @extend_schema(
        operation_id="messages_count_tokens",
        summary="Input tokens of a Messages request, free (Anthropic's count on Anthropic routes, else an "
        "estimate)",
        request=_MessageCreate,
        responses={
            200: inline_serializer(
                "MessageTokensCount",
                {"input_tokens": serializers.IntegerField(), "estimated": serializers.BooleanField()},
            ),
            **{k: v for k, v in _ANTHROPIC_ERRORS.items() if k in (400, 401, 404, 413)},
        },
        tags=["gateway"],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class _CompletionsDoc(APIView):
    @extend_schema(
        operation_id="completions_legacy",
        summary="Legacy text completions: not served, a 400 naming /v1/chat/completions",
        request=inline_serializer(
            "LegacyCompletion", {"model": serializers.CharField(), "prompt": serializers.JSONField()}
        ),
        responses={400: _ERROR},
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
            path("v1/responses", _ResponsesDoc.as_view()),
            path("v1/responses/<str:response_id>", _ResponseDetailDoc.as_view()),
            path("v1/embeddings", _EmbeddingsDoc.as_view()),
            path("v1/completions", _CompletionsDoc.as_view()),
            path("v1/messages", _MessagesDoc.as_view()),
            path("v1/messages/count_tokens", _MessagesCountDoc.as_view()),
        ]
    ).get_schema(request=None, public=True)
