"""URL map. Each app owns its own routes; this file only mounts them."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views
from .forms import ThrottledAdminAuthenticationForm

# The app list sidebar takes 300 px of every admin page: off, so the lists fit 1,400 px.
admin.site.enable_nav_sidebar = False
# Admin's sign-in is throttled like the login page's (smartspec.login_throttle).
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page links; answer with the SVG icon.
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    # Password reset with Django's own views (password_reset, _done, _confirm, _complete); the
    # mail goes through EMAIL_BACKEND (the console in the embedded default).
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        # The split view serves its start-up script as a file, so the page needs no inline script (CSP).
        SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[]),
        name="api-docs",
    ),
    path("", include("gateway.urls")),
    path("", include("billing.urls")),
    path("", include("monitoring.urls")),
]

handler400 = "smartspec.views.bad_request"
handler403 = "smartspec.views.permission_denied"
handler404 = "smartspec.views.page_not_found"
handler500 = "smartspec.views.server_error"
