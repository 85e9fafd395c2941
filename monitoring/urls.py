from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("api/monitoring/usage", api.UsageStatsApi.as_view(), name="monitoring-usage"),
    path("api/monitoring/providers", api.ProviderHealthListApi.as_view(), name="monitoring-providers"),
]
