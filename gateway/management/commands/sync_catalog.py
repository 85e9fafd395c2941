"""`python manage.py sync_catalog`: fold OpenRouter's model list into the catalog now, inline (no Celery
worker, no Redis needed). Prices and context lengths are refreshed, new models added, models no longer
listed marked retired (never deleted) and models listed again made active."""

from django.core.management.base import BaseCommand, CommandError

from gateway.catalog import catalog_sync_from_openrouter


class Command(BaseCommand):
    help = "Sync the model catalog (prices and lifecycle) from OpenRouter's GET /models, inline."

    def handle(self, *args, **options):
        try:
            report = catalog_sync_from_openrouter()
        except ValueError as exc:
            # The catalog is left as it was (the sync is one transaction).
            raise CommandError(f"Catalog sync failed: {exc}") from None
        self.stdout.write(
            f"Catalog sync: {report.created} added, {report.updated} updated, {report.skipped} skipped, "
            f"{report.retired} retired, {report.reactivated} reactivated."
        )
