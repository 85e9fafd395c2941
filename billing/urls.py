from django.urls import path

from . import apis, views

urlpatterns = [
    path("api/credits/balance", apis.CreditBalanceApi.as_view(), name="credits-balance"),
    path("api/credits/transactions", apis.CreditTransactionListApi.as_view(), name="credits-transactions"),
    path("api/credits/topup", apis.CreditTopupApi.as_view(), name="credits-topup"),
    path("api/billing/checkout", apis.BillingCheckoutApi.as_view(), name="billing-checkout"),
    path("api/billing/stripe/webhook", apis.StripeWebhookApi.as_view(), name="stripe-webhook"),
    path("transactions/", views.transactions, name="transactions"),
    path("topup/", views.topup, name="topup"),
    path("topup/success/", views.topup_done, {"outcome": "success"}, name="topup-success"),
    path("topup/cancel/", views.topup_done, {"outcome": "cancel"}, name="topup-cancel"),
]
