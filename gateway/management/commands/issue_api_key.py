"""`python manage.py issue_api_key USERNAME [--create-user]`: prints a new key on its last line."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from billing.credits import format_credits
from billing.services import signup_credits_grant
from gateway.keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="Create the user if missing.")
        parser.add_argument("--name", default="cli", help="A label for the key.")

    def handle(self, *args, username, create_user, name, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create_user:
                raise CommandError(f"No user {username!r}; pass --create-user to create it.")
            user = User.objects.create_user(username=username)
            self.stderr.write(f"Created user {username!r} (no password; set one with changepassword).")
            grant = signup_credits_grant(user=user)
            if grant is not None:
                self.stderr.write(f"Granted {format_credits(grant.amount)} starter credits (SIGNUP_CREDITS).")
        _, raw = api_key_create(user=user, name=name)
        self.stdout.write(raw)
