"""Billing HTTP APIs (thin: parse, call one service or selector, render)."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from smartspec import metrics
from smartspec.jsonbody import StrictDecimalField

from . import payments, selectors, webhooks
from .credits import format_credits, format_usd, usd_to_cents
from .selectors import TRANSACTIONS_MAX_LIMIT


def _balance_out(user) -> dict:
    balance = selectors.balance_get(user=user)
    return {
        "credits": format_credits(balance["balance"]),
        "usd": format_usd(balance["balance"]),
        "held": format_credits(balance["held"]),
    }


class _UsdField(StrictDecimalField):
    """Dollars and cents; the top-up range itself is checked by the payment service."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), **kwargs)


class CreditBalanceApi(APIView):
    """The caller's credits, their USD value, and what open calls are holding."""

    @extend_schema_serializer(component_name="CreditBalance")
    class OutputSerializer(serializers.Serializer):
        credits = serializers.CharField()
        usd = serializers.CharField()
        held = serializers.CharField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(_balance_out(request.user)).data)


class CreditTransactionListApi(APIView):
    """The caller's ledger entries, newest first; `starting_after=<id>` continues below that entry
    (Stripe's cursor: pass the last id of a page to get the next one; an empty list is the end)."""

    @extend_schema_serializer(component_name="CreditTransactionListParams")
    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=TRANSACTIONS_MAX_LIMIT, default=10)
        starting_after = serializers.IntegerField(min_value=1, required=False)

    @extend_schema_serializer(component_name="CreditTransaction")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        kind = serializers.CharField()
        credits = serializers.SerializerMethodField()
        balance_after = serializers.SerializerMethodField()
        description = serializers.CharField()
        reference = serializers.CharField()
        created_at = serializers.DateTimeField()

        def get_credits(self, entry) -> str:
            return format_credits(entry.amount)

        def get_balance_after(self, entry) -> str:
            return format_credits(entry.balance_after)

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description=f"1-{TRANSACTIONS_MAX_LIMIT}, default 10"),
            OpenApiParameter(
                "starting_after",
                int,
                description="An entry id (the last `id` of the previous page): only entries older "
                "than it are listed. Page until an empty list; every entry comes exactly once.",
            ),
        ],
        responses=OutputSerializer(many=True),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = params.validated_data["limit"]
        entries = selectors.transactions_page(
            user=request.user, before_id=params.validated_data.get("starting_after"), limit=limit
        )[:limit]
        return Response(self.OutputSerializer(entries, many=True).data)


class CreditTopupApi(APIView):
    """Credit a PaymentIntent the caller paid, once Stripe confirms it (idempotent per payment_id)."""

    @extend_schema_serializer(component_name="CreditTopupRequest")
    class InputSerializer(serializers.Serializer):
        payment_usd = _UsdField()
        payment_id = serializers.CharField(max_length=255)

    @extend_schema_serializer(component_name="CreditTopup")
    class OutputSerializer(serializers.Serializer):
        payment_id = serializers.CharField()
        credits_added = serializers.CharField()
        already_applied = serializers.BooleanField()
        balance = CreditBalanceApi.OutputSerializer()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup, created = payments.topup_from_payment_intent(
            user=request.user,
            payment_id=data.validated_data["payment_id"],
            amount_cents=usd_to_cents(data.validated_data["payment_usd"]),
        )
        out = {
            "payment_id": topup.payment_intent_id,
            "credits_added": format_credits(topup.credits),
            "already_applied": not created,
            "balance": _balance_out(request.user),
        }
        return Response(self.OutputSerializer(out).data)


class BillingCheckoutApi(APIView):
    """Start a Stripe Checkout for a top-up; credits arrive through the webhook once it is paid."""

    @extend_schema_serializer(component_name="BillingCheckoutRequest")
    class InputSerializer(serializers.Serializer):
        amount_usd = _UsdField()

    @extend_schema_serializer(component_name="BillingCheckout")
    class OutputSerializer(serializers.Serializer):
        checkout_url = serializers.URLField()
        session_id = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dashboard = request.build_absolute_uri("/")
        session = payments.checkout_session_create(
            user=request.user,
            amount_cents=usd_to_cents(data.validated_data["amount_usd"]),
            success_url=f"{dashboard}?topup=success&session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{dashboard}?topup=cancelled",
        )
        return Response(self.OutputSerializer(session).data)


class StripeWebhookApi(APIView):
    """Stripe's events, verified by signature (no user authentication, no CSRF)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema_serializer(component_name="StripeWebhookReceipt")
    class OutputSerializer(serializers.Serializer):
        received = serializers.BooleanField()
        status = serializers.CharField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request):
        try:
            event = webhooks.stripe_event_verify(
                payload=request.body, signature=request.headers.get("Stripe-Signature")
            )
        except Exception:
            metrics.stripe_event("", "refused")
            raise
        try:
            status = webhooks.stripe_event_process(event=event)
        except Exception:
            metrics.stripe_event(event["type"], "failed")
            raise
        metrics.stripe_event(event["type"], status)
        return Response(self.OutputSerializer({"received": True, "status": status}).data)
