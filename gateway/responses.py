"""Stored responses (`store: true` on `POST /v1/responses`): kept per user for
`RESPONSES_RETENTION_DAYS`, so a conversation can continue by `previous_response_id` and
`GET`/`DELETE /v1/responses/{id}` work. Another user's response is answered as not found, exactly like
one that never existed or has expired.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from smartspec.errors import NotFound

from .models import StoredResponse

# Ids are ours (`resp_` + 32 hex); anything longer is no id of ours.
MAX_ID_LENGTH = 64


def _not_found(response_id: str) -> NotFound:
    return NotFound(
        f"No response with id {response_id[:MAX_ID_LENGTH]!r} was found.", code="response_not_found"
    )


def stored_response_get(*, user, response_id: str) -> StoredResponse:
    """The caller's unexpired stored response; 404 for anything else (never says whose it is)."""
    if not isinstance(response_id, str) or len(response_id) > MAX_ID_LENGTH:
        raise _not_found(str(response_id))
    found = StoredResponse.objects.filter(id=response_id, user=user, expires_at__gt=timezone.now()).first()
    if found is None:
        raise _not_found(response_id)
    return found


def stored_response_create(
    *, user, response_id: str, body: dict[str, Any], messages: list[dict[str, Any]]
) -> StoredResponse:
    now = timezone.now()
    return StoredResponse.objects.create(
        id=response_id,
        user=user,
        body=body,
        messages=messages,
        created_at=now,
        expires_at=now + timedelta(days=settings.RESPONSES_RETENTION_DAYS),
    )


def stored_response_delete(*, user, response_id: str) -> None:
    stored_response_get(user=user, response_id=response_id).delete()


def stored_responses_purge() -> int:
    """Delete every expired stored response (Celery beat); returns how many."""
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
