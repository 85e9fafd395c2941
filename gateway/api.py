"""Gateway HTTP APIs on DRF (thin: parse, call a service or selector, render).

The chat endpoints are async views in `gateway.views`; these are the read-only lists.
"""

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.selectors import usage_receipt, usage_receipt_find
from smartspec.errors import InvalidRequest, ModelNotFound, NotFound

from . import openai_format
from .catalog import catalog_aliases_resolve, catalog_model_callable
from .client import get_available_models


class WhoAmIApi(APIView):
    """Who the presented credentials belong to; handy for checking a key."""

    @extend_schema_serializer(component_name="WhoAmI")
    @extend_schema_serializer(component_name="WhoAmI")
    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        key_prefix = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        key = request.auth if hasattr(request.auth, "prefix") else None
        data = {"username": request.user.get_username(), "key_prefix": key.prefix if key else None}
        return Response(self.OutputSerializer(data).data)


def _price(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=30, decimal_places=18, help_text=help_text)


class PricingSerializer(serializers.Serializer):
    """Prices in OpenRouter's names, each the USD a unit of that component is billed at."""

    prompt = _price("USD per prompt token")
    completion = _price("USD per completion token")
    input_cache_read = _price("USD per prompt token read from the cache")
    input_cache_write = _price("USD per prompt token written to the cache (5-minute TTL)")
    input_cache_write_1h = _price("USD per prompt token written to the 1-hour cache")
    internal_reasoning = _price("USD per reasoning token")
    request = _price("USD per call")
    image = _price("USD per input image")


class ModelListApi(APIView):
    """OpenAI's model list (`GET /v1/models`), each model with its pricing."""

    @extend_schema_serializer(component_name="Model")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        object = serializers.CharField(default="model")
        created = serializers.IntegerField(help_text="Unix time the model was released or added")
        owned_by = serializers.CharField()
        name = serializers.CharField()
        mode = serializers.CharField(help_text="chat or embedding")
        context_length = serializers.IntegerField()
        pricing = PricingSerializer()

    @extend_schema(
        responses=inline_serializer(
            "ModelList",
            {"object": serializers.CharField(), "data": OutputSerializer(many=True)},
        )
    )
    def get(self, request):
        models = [{**m, "owned_by": m["id"].split("/", 1)[0]} for m in get_available_models()]
        return Response({"object": "list", "data": self.OutputSerializer(models, many=True).data})


class ModelDetailApi(APIView):
    """OpenAI's model object (`GET /v1/models/{id}`, ids contain "/") with its pricing."""

    @extend_schema(operation_id="model_retrieve", responses={200: ModelListApi.OutputSerializer, 404: None})
    def get(self, request, model_id: str):
        # Another name of a catalog model (Anthropic's `claude-sonnet-4-6`) describes that model, as
        # it routes to it on every other surface.
        model_id = catalog_aliases_resolve(names=[model_id]).get(model_id, model_id)
        found = next((m for m in get_available_models() if m["id"] == model_id), None)
        if found is None:
            # A retired model is a 404 `model_retired` naming its successor (gateway.catalog).
            catalog_model_callable(model_id=model_id)
            raise ModelNotFound(f"Unknown model: {model_id[:200]}. GET /v1/models lists the models.")
        model = {**found, "owned_by": found["id"].split("/", 1)[0]}
        return Response(ModelListApi.OutputSerializer(model).data)


class CatalogListApi(APIView):
    """The catalog as the gateway can serve it right now: prices, context, providers, ZDR."""

    @extend_schema_serializer(component_name="CatalogModel")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()
        context_length = serializers.IntegerField()
        pricing = PricingSerializer()
        providers = serializers.ListField(child=serializers.CharField())
        zdr = serializers.BooleanField()

    @extend_schema(responses=inline_serializer("CatalogModelList", {"models": OutputSerializer(many=True)}))
    def get(self, request):
        return Response({"models": self.OutputSerializer(get_available_models(), many=True).data})


class GenerationApi(APIView):
    """The receipt of one call (`GET /v1/generation?id=`, the path OpenRouter clients call on their
    base URL): OpenRouter's generation fields plus the credits charged, the hold, the price applied
    per component, the route, the attempts and the reconciliation. The caller's own calls only
    (staff: anyone's); another user's call is a 404 like one that never was."""

    @extend_schema(
        operation_id="generation_retrieve",
        parameters=[
            OpenApiParameter(
                "id",
                str,
                required=True,
                description="the response's id (chatcmpl-..., resp_...) or request id",
            )
        ],
        responses={200: dict, 404: None},
    )
    def get(self, request):
        generation_id = request.query_params.get("id")
        if not generation_id:
            raise InvalidRequest("id is required: a response id or a request id.", code="missing_id")
        record = usage_receipt_find(user=request.user, generation_id=generation_id)
        if record is None:
            raise NotFound("No generation with this id was found.", code="generation_not_found")
        return HttpResponse(
            openai_format.json_body({"data": usage_receipt(record=record)}), content_type="application/json"
        )
