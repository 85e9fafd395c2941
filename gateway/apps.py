from django.apps import AppConfig


class GatewayConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gateway"

    def ready(self):
        # Registers the OpenAPI extension for API-key authentication.
        from . import schema  # noqa: F401
