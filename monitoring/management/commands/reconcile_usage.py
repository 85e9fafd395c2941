"""`python manage.py reconcile_usage [--since 2026-12-01 | --since 48h] [--batch N]`: check recent
OpenRouter calls against OpenRouter's generation records now, inline (what the beat job runs)."""

import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from monitoring.reconciliation import usage_reconcile

_AGO = re.compile(r"^(\d{1,5})([hd])$")


def since_parse(text: str) -> dt.datetime:
    """An ISO date or datetime (UTC unless it says otherwise), or an age: "48h", "7d"."""
    ago = _AGO.match(text.strip())
    if ago:
        amount, unit = int(ago.group(1)), ago.group(2)
        return timezone.now() - dt.timedelta(**{"hours" if unit == "h" else "days": amount})
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError("--since takes an ISO date or datetime, or an age such as 48h or 7d.")
        moment = dt.datetime.combine(day, dt.time.min)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Reconcile recent OpenRouter calls with OpenRouter's own generation records, inline."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", help="ISO date/datetime or an age (48h, 7d); default RECONCILE_MAX_AGE_DAYS"
        )
        parser.add_argument(
            "--batch", type=int, help="calls to check at most (default and cap RECONCILE_BATCH)"
        )

    def handle(self, *args, **options):
        since = since_parse(options["since"]) if options.get("since") else None
        try:
            report = usage_reconcile(since=since, batch=options.get("batch"))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if report["skipped"]:
            self.stdout.write(f"Reconciliation skipped: {report['skipped']}.")
            return
        self.stdout.write(
            f"Reconciliation: {report['checked']} checked, {report['matched']} matched, "
            f"{report['drift']} drift, {report['pending']} pending, {report['unavailable']} unavailable."
        )
        if report["catalog_drift_models"]:
            self.stdout.write("Catalog price drift: " + ", ".join(report["catalog_drift_models"]))
        if report["stopped"]:
            self.stdout.write(f"Stopped early: {report['stopped']}.")
