"""`python manage.py grant_credits USERNAME CREDITS --reason TEXT`: a staff ledger adjustment."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from billing.credits import credits_to_micro, format_credits
from billing.services import adjustment_create
from smartspec.errors import InvalidRequest


class Command(BaseCommand):
    help = "Grant (or, with a negative amount, debit) credits through the ledger."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("credits", help="Credits, e.g. 1000 or 2.5; negative to debit.")
        parser.add_argument("--reason", required=True, help="Why; stored on the ledger entry.")
        parser.add_argument(
            "--actor", help="Username of the staff member responsible (recorded as the actor)."
        )

    def handle(self, *args, username, credits, reason, actor, **options):
        if not reason.strip():
            raise CommandError("--reason must say why.")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        staff = None
        if actor:
            staff = User.objects.filter(username=actor, is_staff=True).first()
            if staff is None:
                raise CommandError(f"No staff user {actor!r}.")
        try:
            amount = credits_to_micro(credits)
        except ValueError as exc:
            raise CommandError(str(exc))
        try:
            entry = adjustment_create(
                user=user, amount=amount, actor=staff, reason=f"{reason} (grant_credits)"
            )
        except InvalidRequest as exc:
            raise CommandError(exc.message)
        balance = format_credits(entry.balance_after)
        self.stdout.write(f"{format_credits(entry.amount)} credits for {username}; balance {balance}")
