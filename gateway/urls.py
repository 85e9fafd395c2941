from django.urls import path

from . import api

urlpatterns = [
    path("api/auth/whoami", api.WhoAmIApi.as_view(), name="whoami"),
]
