"""The one signal the gateway listens to: a user saved by any path (admin, a command, a service)
may have been deactivated, and their API keys must stop working at once, not when the key cache
expires (`API_KEY_CACHE_SECONDS`)."""

from __future__ import annotations

from .keys import api_keys_user_status_changed


def user_saved(sender, instance, created=False, update_fields=None, **kwargs) -> None:
    # A new user has no keys; a save that names its fields and leaves is_active out (e.g. last_login
    # on sign-in) changes nothing.
    if created or (update_fields is not None and "is_active" not in update_fields):
        return
    api_keys_user_status_changed(user=instance)
