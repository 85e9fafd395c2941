"""Monitoring HTTP APIs: usage stats and provider health (thin: parse, call, render)."""

import datetime as dt

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from smartspec.errors import Forbidden, InvalidRequest

from .selectors import LLMMonitoringService
from .services import ProviderHealthMonitor


def _first_error(errors: dict) -> str:
    field, messages = next(iter(errors.items()))
    return f"{field}: {messages[0]}"


class UsageStatsApi(APIView):
    """The caller's usage over the last `days` days; staff may ask for any `user_id`."""

    class InputSerializer(serializers.Serializer):
        days = serializers.IntegerField(min_value=1, max_value=366, default=30)
        user_id = serializers.IntegerField(min_value=1, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("days", int, description="1-366, default 30 (today included)"),
            OpenApiParameter("user_id", int, description="staff only: another user's usage"),
        ],
        responses=dict,
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        if not params.is_valid():
            raise InvalidRequest(_first_error(params.errors), code="invalid_parameter")
        user_id = params.validated_data.get("user_id", request.user.pk)
        if user_id != request.user.pk and not request.user.is_staff:
            raise Forbidden("Only staff may read another user's usage.")
        stats = LLMMonitoringService().get_comprehensive_stats(user_id, params.validated_data["days"])
        return Response(stats)


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat() if ts else None


class ProviderHealthListApi(APIView):
    """Provider health. Staff see every provider and provider+model row in the rolling window, with
    the last error, probes and circuit state; customers see one aggregate row per provider (healthy,
    success rate, latency): no error text, no models, nothing about how the gateway is failing."""

    class OutputSerializer(serializers.Serializer):
        provider = serializers.CharField()
        model = serializers.CharField(allow_null=True)
        healthy = serializers.BooleanField()
        down = serializers.BooleanField()
        success_rate = serializers.FloatField(allow_null=True)
        latency_p50_ms = serializers.FloatField(allow_null=True)
        latency_p95_ms = serializers.FloatField(allow_null=True)
        throughput_tps = serializers.FloatField(allow_null=True)
        requests = serializers.IntegerField()
        failures = serializers.IntegerField()
        consecutive_failures = serializers.IntegerField()
        last_error = serializers.CharField(allow_blank=True)
        last_error_at = serializers.CharField(allow_null=True)
        last_probe_at = serializers.CharField(allow_null=True)
        probe_ok = serializers.BooleanField(allow_null=True)
        probe_latency_ms = serializers.IntegerField(allow_null=True)
        circuit = serializers.ChoiceField(choices=["closed", "open", "half_open"], allow_null=True)
        circuit_open_until = serializers.CharField(allow_null=True)

    class CustomerOutputSerializer(serializers.Serializer):
        provider = serializers.CharField()
        healthy = serializers.BooleanField()
        success_rate = serializers.FloatField(allow_null=True)
        latency_p50_ms = serializers.FloatField(allow_null=True)
        latency_p95_ms = serializers.FloatField(allow_null=True)

    @extend_schema(
        responses=OutputSerializer(many=True),
        description="Staff get these rows; other callers one row per provider with provider, healthy, "
        "success_rate, latency_p50_ms and latency_p95_ms only.",
    )
    def get(self, request):
        rows = ProviderHealthMonitor().get_all_provider_health()
        if not request.user.is_staff:
            summary = [row for row in rows if row["model"] is None]
            return Response({"providers": self.CustomerOutputSerializer(summary, many=True).data})
        for row in rows:
            row["last_error_at"] = _iso(row["last_error_at"])
            row["last_probe_at"] = _iso(row["last_probe_at"])
            row["circuit_open_until"] = _iso(row["circuit_open_until"])
        return Response({"providers": self.OutputSerializer(rows, many=True).data})
