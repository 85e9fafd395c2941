from django.urls import path

from . import api, views

urlpatterns = [
    path("api/auth/whoami", api.WhoAmIApi.as_view(), name="whoami"),
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/models", api.ModelListApi.as_view(), name="models"),
    path("api/llm/chat", views.llm_chat, name="llm-chat"),
    path("api/llm/models", api.CatalogListApi.as_view(), name="llm-models"),
]
