"""SmartSpec Pro: a self-hosted LLM gateway with prepaid credits."""

from .celery import app as celery_app

__all__ = ("celery_app",)
