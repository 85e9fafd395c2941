"""Gateway HTTP APIs (thin: parse, call a service, render)."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class WhoAmIApi(APIView):
    """Who the presented credentials belong to; handy for checking a key."""

    @extend_schema_serializer(component_name="WhoAmI")
    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        key_prefix = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        key = request.auth if hasattr(request.auth, "prefix") else None
        data = {"username": request.user.get_username(), "key_prefix": key.prefix if key else None}
        return Response(self.OutputSerializer(data).data)
