from django.urls import path

from . import anthropic_views, api, pages, responses_views, views

urlpatterns = [
    path("api/auth/whoami", api.WhoAmIApi.as_view(), name="whoami"),
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/models", api.ModelListApi.as_view(), name="models"),
    path("v1/models/<path:model_id>", api.ModelDetailApi.as_view(), name="model-detail"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/generation", api.GenerationApi.as_view(), name="generation"),
    path("v1/completions", views.legacy_completions, name="completions"),
    path("v1/responses", responses_views.responses_create, name="responses"),
    path("v1/responses/<str:response_id>", responses_views.response_detail, name="response-detail"),
    path("v1/messages", anthropic_views.messages_create, name="messages"),
    path("v1/messages/count_tokens", anthropic_views.messages_count_tokens, name="messages-count-tokens"),
    path("api/llm/chat", views.llm_chat, name="llm-chat"),
    path("api/llm/models", api.CatalogListApi.as_view(), name="llm-models"),
    path("keys/", pages.api_keys, name="api-keys"),
    path("keys/<int:key_id>/revoke/", pages.api_key_revoke_view, name="api-key-revoke"),
    path("keys/<int:key_id>/limits/", pages.api_key_limits_view, name="api-key-limits"),
    path("playground/", pages.playground, name="playground"),
]
