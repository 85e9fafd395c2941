from django.apps import AppConfig


class GatewayConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gateway"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from .signals import user_saved

        post_save.connect(user_saved, sender=get_user_model(), dispatch_uid="gateway.user_saved")
