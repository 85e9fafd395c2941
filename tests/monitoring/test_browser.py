"""The dashboard in a real browser: Debian's chromium driven by Playwright against a live server.

Sign up, log out and in, see the balance and the charts drawn, create and revoke a key, send a
playground prompt (answered by the offline demo provider). Screenshots go to tests/artifacts/.
"""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Reports whether a canvas has any non-transparent pixel, i.e. Chart.js drew something.
CANVAS_DRAWN = """(id) => {
  const c = document.getElementById(id);
  if (!c || !c.width || !c.height) return false;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < px.length; i += 4) { if (px[i] !== 0) return true; }
  return false;
}"""


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_dashboard_journey(monkeypatch, live_server, demo_only, django_user_model, make_usage, browser):
    from billing.credits import format_credits
    from billing.services import adjustment_create, hold_place, hold_settle

    # Playwright's sync API runs its own event loop in this thread; the ORM calls below are plain
    # sync test setup, not async code, so Django's async-safety guard does not apply to them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Sign up, then log out and back in through the login page.
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("#id_username", "carol")
    page.fill("#id_password1", "a-long-Passphrase-42")
    page.fill("#id_password2", "a-long-Passphrase-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.click("text=Log out (carol)")
    page.wait_for_url("**/accounts/login/**")
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "carol")
    page.fill("#id_password", "a-long-Passphrase-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    carol = django_user_model.objects.get(username="carol")
    adjustment_create(user=carol, amount=100_000_000, actor=None, reason="starter credits")
    # A fortnight of earlier calls, each charged through a hold like the gateway does.
    spent = made = 0
    calls = [
        ("openai/gpt-4o", "openrouter", 1_250_000),
        ("anthropic/claude-3.5-sonnet", "anthropic", 3_400_000),
        ("google/gemini-flash-1.5", "google", 150_000),
    ]
    for day in range(14):
        for i, (model, provider, credits) in enumerate(calls[: 1 + day % 3]):
            amount = credits // (1 + (day + i) % 4)
            request_id = f"seed-{day}-{i}"
            hold = hold_place(user=carol, amount=amount + 500_000, request_id=request_id)
            hold_settle(hold_id=hold.pk, amount=amount)
            make_usage(
                carol,
                request_id=request_id,
                model=model,
                provider=provider,
                credits=amount,
                cost_usd=Decimal(amount) / 10**9,
                created_at=timezone.now() - dt.timedelta(days=day, hours=i),
            )
            spent += amount
            made += 1

    # The playground answers through /api/llm/chat with the session and CSRF token.
    page.goto(f"{live_server.url}/playground/")
    page.select_option("select[name=task_type]", "simple")
    page.fill("textarea[name=prompt]", "Say hello to the dashboard")
    page.click("#send")
    page.wait_for_selector("#result:not([hidden])")
    assert "hello to the dashboard" in page.inner_text("[data-testid=answer]")
    assert "credits" in page.inner_text("[data-testid=credits-charged]")

    # Dashboard: balance and charts actually drawn.
    page.goto(f"{live_server.url}/")
    from monitoring.models import UsageRecord

    # The demo bills the playground's call at catalog prices, like any provider.
    playground_charge = UsageRecord.objects.get(user=carol, provider="demo").credits
    assert playground_charge > 0
    assert page.inner_text("[data-testid=balance]") == format_credits(100_000_000 - spent - playground_charge)
    assert page.inner_text("[data-testid=requests]") == str(made + 1)  # + the playground's call
    page.wait_for_function(
        "() => window.Chart && Chart.getChart('chart-daily') && Chart.getChart('chart-models')"
    )
    for chart in ("chart-daily", "chart-models", "chart-providers"):
        # Fails with a timeout if the canvas never gets a single painted pixel.
        page.wait_for_function(CANVAS_DRAWN, arg=chart, timeout=5000)
    page.wait_for_timeout(800)  # cosmetic: the screenshot shows the charts after their entry animation
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # Phone width: no horizontal scrolling of the page itself.
    page.set_viewport_size({"width": 390, "height": 844})
    # Charts re-fit after their resize observer fires; wait for that rather than a fixed pause.
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth + 1", timeout=5000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # API keys: create (shown once, copy button), then revoke.
    page.goto(f"{live_server.url}/keys/")
    page.fill("input[name=name]", "laptop")
    page.click("text=Create key")
    raw = page.inner_text("#new-key-value")
    assert raw.startswith("sk-ss-")
    page.click("#copy-key")
    page.locator("#copy-key", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    page.screenshot(path=str(ARTIFACTS / "keys.png"), full_page=True)
    page.goto(f"{live_server.url}/keys/")
    assert raw not in page.content()
    row = page.locator("tr", has_text="laptop")
    row.locator("button", has_text="Revoke").click()
    page.wait_for_selector("text=revoked.")
    assert page.locator("tr", has_text="laptop").locator(".pill.error").inner_text() == "revoked"

    assert errors == []


def test_topup_goes_through_stripe_checkout_and_back(live_server, settings, user, browser):
    """The amount picker posts to /api/billing/checkout and follows the Checkout URL; Stripe's return
    to the dashboard lands on the success page. Stripe's API is mocked with `responses`."""
    from urllib.parse import parse_qs

    import responses

    settings.STRIPE_SECRET_KEY = "sk_test_browser_key"
    back = f"{live_server.url}/?topup=success&session_id=cs_test_browser"
    session = {
        "id": "cs_test_browser",
        "object": "checkout.session",
        "amount_total": 5000,
        "currency": "usd",
        "client_reference_id": str(user.pk),
        "livemode": False,
        "mode": "payment",
        "payment_status": "unpaid",
        "status": "open",
        "url": back,  # stands in for checkout.stripe.com, which redirects back here
    }
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(15000)
    with responses.RequestsMock() as stripe_api:
        stripe_api.post("https://api.stripe.com/v1/checkout/sessions", json=session)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw-alice-123")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        page.goto(f"{live_server.url}/topup/")
        page.check("input[name=amount_usd][value='50']")
        page.click("text=Continue to payment")
        page.wait_for_url(f"{live_server.url}/topup/success/")
        assert "Thank you" in page.content()
        sent = parse_qs(stripe_api.calls[0].request.body)
    assert sent["line_items[0][price_data][unit_amount]"] == ["5000"]
    assert sent["client_reference_id"] == [str(user.pk)]
