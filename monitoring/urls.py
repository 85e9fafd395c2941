from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("calls/<int:record_id>/", views.call_detail, name="call-detail"),
    path("staff/", views.staff, name="staff"),
    path("api/monitoring/usage", api.UsageStatsApi.as_view(), name="monitoring-usage"),
    path("api/monitoring/providers", api.ProviderHealthListApi.as_view(), name="monitoring-providers"),
]
