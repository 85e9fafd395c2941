"""Gateway HTTP APIs on DRF (thin: parse, call a service or selector, render).

The chat endpoints are async views in `gateway.views`; these are the read-only lists.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .client import get_available_models


class WhoAmIApi(APIView):
    """Who the presented credentials belong to; handy for checking a key."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        key_prefix = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        key = request.auth if hasattr(request.auth, "prefix") else None
        data = {"username": request.user.get_username(), "key_prefix": key.prefix if key else None}
        return Response(self.OutputSerializer(data).data)


class _PricingSerializer(serializers.Serializer):
    prompt = serializers.DecimalField(max_digits=30, decimal_places=18, help_text="USD per prompt token")
    completion = serializers.DecimalField(
        max_digits=30, decimal_places=18, help_text="USD per completion token"
    )


class ModelListApi(APIView):
    """OpenAI's model list (`GET /v1/models`), each model with its pricing."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        object = serializers.CharField(default="model")
        created = serializers.IntegerField(default=0)
        owned_by = serializers.CharField()
        name = serializers.CharField()
        context_length = serializers.IntegerField()
        pricing = _PricingSerializer()

    @extend_schema(
        responses=inline_serializer(
            "ModelList",
            {"object": serializers.CharField(), "data": OutputSerializer(many=True)},
        )
    )
    def get(self, request):
        models = [{**m, "owned_by": m["id"].split("/", 1)[0]} for m in get_available_models()]
        return Response({"object": "list", "data": self.OutputSerializer(models, many=True).data})


class CatalogListApi(APIView):
    """The catalog as the gateway can serve it right now: prices, context, providers, ZDR."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()
        context_length = serializers.IntegerField()
        pricing = _PricingSerializer()
        providers = serializers.ListField(child=serializers.CharField())
        zdr = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response({"models": self.OutputSerializer(get_available_models(), many=True).data})
