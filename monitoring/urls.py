from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("calls/<int:record_id>/", views.call_detail, name="call-detail"),
    path("transactions/", views.transactions, name="transactions"),
    path("topup/", views.topup, name="topup"),
    path("topup/success/", views.topup_done, {"outcome": "success"}, name="topup-success"),
    path("topup/cancel/", views.topup_done, {"outcome": "cancel"}, name="topup-cancel"),
    path("keys/", views.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
    path("keys/<int:key_id>/limits/", views.api_key_limits_view, name="api-key-limits"),
    path("playground/", views.playground, name="playground"),
    path("staff/", views.staff, name="staff"),
    path("api/monitoring/usage", api.UsageStatsApi.as_view(), name="monitoring-usage"),
    path("api/monitoring/providers", api.ProviderHealthListApi.as_view(), name="monitoring-providers"),
]
