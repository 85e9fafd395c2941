"""The bench's accounts: one user per name, each with one API key and credits (one process, not two
`manage.py` runs per account).

    python -m benchmarks.accounts CREDITS NAME [NAME ...]

Expects the gateway's environment (see run.py); prints the keys, in the order of the names, as a JSON
list on its last line.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from billing.credits import credits_to_micro  # noqa: E402
from billing.services import adjustment_create  # noqa: E402
from gateway.keys import api_key_create  # noqa: E402


def account_create(*, username: str, credits: str) -> str:
    """A user with `credits` granted through the ledger; its new API key."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    adjustment_create(user=user, amount=credits_to_micro(credits), actor=None, reason="benchmark")
    _, raw = api_key_create(user=user, name="bench")
    return raw


if __name__ == "__main__":
    credits, *names = sys.argv[1:]
    print(json.dumps([account_create(username=name, credits=credits) for name in names]))
