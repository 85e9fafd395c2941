"""Account forms: sign-up asks for an email address (password reset mails it a link); sign-in (the
login page and admin's) is throttled by account and by address (smartspec.login_throttle)."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from .login_throttle import login_failure_record, login_locked, login_success_record

THROTTLED = "throttled"


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=True, help_text="For password resets; never shown to anyone.", max_length=254
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email address exists; log in or reset its password."
            )
        return email


class ThrottledLoginMixin:
    """Refuse to check any password once the account or the address is locked out; count failures."""

    def clean(self):
        username = self.data.get("username", "") or ""
        address = (self.request.META.get("REMOTE_ADDR") if self.request else "") or "-"
        if login_locked(username=username, address=address):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(
                "Too many failed sign-in attempts for this account or from this address. "
                f"Try again in {minutes} minutes, or reset your password.",
                code=THROTTLED,
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            login_failure_record(username=username, address=address)
            raise
        login_success_record(username=username, address=address)
        return cleaned

    def throttled(self) -> bool:
        return any(e.code == THROTTLED for e in self.errors.as_data().get("__all__", []))


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
