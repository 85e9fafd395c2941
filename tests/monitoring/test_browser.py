"""The dashboard in a real browser: Debian's chromium driven by Playwright against a live server.

Every page at desktop width and at 390 px (no horizontal overflow): sign up with an email, log out
and in, a streamed two-turn playground conversation (answered by the offline demo provider, billed
at catalog prices, the balance following), the dashboard's statement figures and charts, a failed
call's page, the ledger, keys (copy, limits summary, revoke that asks first), a $7.77 top-up through
a mocked Stripe Checkout, the 404 page. Screenshots go to tests/artifacts/<page>-{desktop,phone}.png.
"""

import datetime as dt
import time
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


# Every element's right edge within the viewport, except what scrolls inside a .table-wrap (the
# wrapper itself must fit); returns the offenders, so a failure names them.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const wrap = el.closest('.table-wrap');
    if (wrap && wrap !== el) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 1) bad.push(`${el.tagName}.${el.className}#${el.id} ${Math.round(r.right)}px`);
  }
  if (document.documentElement.scrollWidth > width + 1) bad.push(`page ${document.documentElement.scrollWidth}px`);
  return bad.slice(0, 8);
}"""

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _wait_for(page, expression: str, *, arg=None, timeout: float = 30000) -> None:
    """Playwright's wait_for_function, polled from here: its in-page polling compiles the predicate
    with eval, which the pages' Content-Security-Policy refuses (page.evaluate is not subject to it)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {expression[:80]!r}")
        page.wait_for_timeout(50)


def _both_widths(page, name: str, before_shot=None) -> None:
    """Screenshot the current page at desktop and phone width; at 390 px nothing may overflow."""
    page.set_viewport_size(DESKTOP)
    if before_shot:
        before_shot()
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    # Charts re-fit after their resize observer fires: wait for the layout rather than a fixed pause.
    try:
        _wait_for(page, f"({OVERFLOW})().length === 0", timeout=5000)
    except Exception:
        pass
    offenders = page.evaluate(OVERFLOW)
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    assert offenders == [], f"{name} at 390 px: {offenders}"


def _login(page, base, username, password):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


@pytest.fixture
def asgi_server(transactional_db, demo_only):
    """The project under uvicorn, as `make run` serves it (ASGI: the playground's stream arrives in
    pieces), on the test database, with no provider key (the demo answers) and DEBUG off."""
    from tests.support import live_uvicorn, subprocess_database_url

    keys = ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY")
    env = dict.fromkeys((*keys, "ZAI_API_KEY", "OLLAMA_BASE_URL"), "")
    env.update(DATABASE_URL=subprocess_database_url(), DEBUG="false", SIGNUP_CREDITS="0")
    with live_uvicorn(env, workers=1) as base:
        yield base


@pytest.mark.postgres
def test_dashboard_journey(monkeypatch, asgi_server, django_user_model, make_usage, browser):
    from billing.credits import credits_display
    from billing.selectors import balance_get
    from billing.services import adjustment_create, hold_place, hold_settle
    from monitoring.models import UsageRecord

    # Playwright's sync API runs its own event loop in this thread; the ORM calls below are plain
    # sync test setup, not async code, so Django's async-safety guard does not apply to them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    base = asgi_server
    context = browser.new_context(viewport=DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30000)  # a loaded CI machine, not a slow page
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The Content-Security-Policy refuses nothing the pages load (a refusal is a console error).
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    csp_headers = []
    page.on(
        "response",
        lambda r: (
            csp_headers.append(r.headers.get("content-security-policy"))
            if r.request.resource_type == "document"
            else None
        ),
    )

    # Sign up (with an email), then log out and back in through the login page.
    page.goto(f"{base}/accounts/signup/")
    _both_widths(page, "signup")
    page.fill("#id_username", "carol")
    page.fill("#id_email", "carol@example.com")
    page.fill("#id_password1", "a-long-Passphrase-42")
    page.fill("#id_password2", "a-long-Passphrase-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    # An empty dashboard says so instead of blank charts and "– ms".
    assert "No credits spent" in page.inner_text("[data-testid=no-spend]")
    assert page.inner_text("[data-testid=latency]") == "latency: no calls yet"
    page.click("text=Log out (carol)")
    page.wait_for_url("**/accounts/login/**")
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    _both_widths(page, "login")
    _login(page, base, "carol", "a-long-Passphrase-42")

    carol = django_user_model.objects.get(username="carol")
    adjustment_create(user=carol, amount=60_000_000_000, actor=None, reason="starter credits")
    # A fortnight of earlier calls, each charged through a hold like the gateway does.
    spent = made = tokens = 0
    calls = [
        ("openai/gpt-4o", "openrouter", 1_250_000_000),
        ("anthropic/claude-3.5-sonnet", "anthropic", 3_400_000_000),
        ("google/gemini-flash-1.5", "google", 150_000_000),
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
                prompt_tokens=1_200,
                completion_tokens=350,
                created_at=timezone.now() - dt.timedelta(days=day, hours=i),
            )
            spent += amount
            made += 1
            tokens += 1_550
    failed = make_usage(
        carol,
        model="",
        provider="",
        credits=0,
        status="error",
        error_class="InsufficientCredits",
        attempts=[],
    )

    # Playground: two turns, streamed; the balance on the page follows each charge.
    page.goto(f"{base}/playground/")
    before = page.inner_text("[data-testid=available]")
    page.select_option("select[name=model]", "openai/gpt-4o-mini")
    assert page.is_checked("input[name=stream]")
    assert page.get_attribute("input[name=max_tokens]", "max") == "1000000"
    page.fill("textarea[name=prompt]", "Say hello to the dashboard")
    with page.expect_response("**/api/llm/chat") as answer:
        page.click("#send")
    assert answer.value.headers["content-type"].startswith("text/event-stream")
    assert answer.value.request.post_data_json["stream"] is True
    page.wait_for_selector("#result:not([hidden])")
    assert "hello to the dashboard" in page.inner_text("[data-testid=answer] >> nth=0")
    assert "billed at the catalog price" in page.inner_text("[data-testid=answer] >> nth=0")
    _wait_for(page, f"document.querySelector('[data-testid=available]').textContent !== {before!r}")
    page.fill("textarea[name=prompt]", "And a second turn")
    with page.expect_response("**/api/llm/chat") as second:
        page.click("#send")
    sent = second.value.request.post_data_json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]  # multi-turn: the history goes along
    assert sent[1]["content"].startswith("Demo answer: Say hello to the dashboard")
    _wait_for(page, "document.querySelectorAll('[data-testid=answer]').length === 2")
    _wait_for(
        page,
        "document.querySelectorAll('[data-testid=answer]')[1].textContent.startsWith('Demo answer: And a second')",
    )
    # The stream's usage row is written as the stream closes, just after its last byte.
    for _ in range(50):
        charges = list(
            UsageRecord.objects.filter(user=carol, provider="demo").values_list("credits", flat=True)
        )
        if len(charges) == 2:
            break
        time.sleep(0.1)
    assert len(charges) == 2 and all(c > 0 for c in charges)
    available = credits_display(balance_get(user=carol)["available"])
    _wait_for(page, f"document.querySelector('[data-testid=available]').textContent === {available!r}")
    assert "credits ($" in page.inner_text("[data-testid=credits-charged]")
    _both_widths(page, "playground")

    # Dashboard: statement figures (separators, two decimals, dollars), charts drawn.
    page.goto(f"{base}/")
    balance = 60_000_000_000 - spent - sum(charges)
    assert balance_get(user=carol)["balance"] == balance
    assert page.inner_text("[data-testid=balance]") == credits_display(balance)
    assert "," in page.inner_text("[data-testid=balance]")
    assert page.inner_text("[data-testid=requests]") == f"{made + 3:,}"  # + the failure, 2 playground calls
    assert page.inner_text("[data-testid=spent]") == credits_display(spent + sum(charges))
    assert page.inner_text("[data-testid=tokens]").replace(",", "").isdigit()
    assert "," in page.inner_text("[data-testid=tokens]")
    _wait_for(
        page, "() => !!(window.Chart && Chart.getChart('chart-daily') && Chart.getChart('chart-models'))"
    )
    legend = page.evaluate("Chart.getChart('chart-models').data.labels")
    assert "" not in legend and "-" not in legend
    assert "failed before a provider" in page.evaluate("Chart.getChart('chart-providers').data.labels")
    for chart in ("chart-daily", "chart-models", "chart-providers"):
        # Fails with a timeout if the canvas never gets a single painted pixel.
        _wait_for(page, CANVAS_DRAWN, arg=chart, timeout=15000)
    page.wait_for_timeout(800)  # cosmetic: the screenshots show the charts after their entry animation
    _both_widths(page, "dashboard", before_shot=lambda: page.wait_for_timeout(800))

    # The failed call's page names what failed; a long request id wraps at phone width.
    page.goto(f"{base}/calls/{failed.pk}/")
    assert page.inner_text("[data-testid=failure]").startswith("Failed before a provider")
    _both_widths(page, "call-failed")
    ok_call = UsageRecord.objects.filter(user=carol, provider="demo").first()
    page.goto(f"{base}/calls/{ok_call.pk}/")
    assert page.inner_text("[data-testid=charged]") == credits_display(ok_call.credits)
    _both_widths(page, "call")

    page.goto(f"{base}/transactions/")
    assert "UTC" in page.inner_text("table")
    _both_widths(page, "transactions")

    # API keys: create (shown once, copy button), limits saved and summarised, revoke asks first.
    page.goto(f"{base}/keys/")
    page.fill("input[name=name]", "laptop")
    page.click("text=Create key")
    raw = page.inner_text("#new-key-value")
    assert raw.startswith("sk-ss-")
    page.click("#copy-key")
    page.locator("#copy-key", has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    _both_widths(page, "keys-new")
    page.goto(f"{base}/keys/")
    assert raw not in page.content()
    page.click("text=Edit limits")
    page.fill("input[name=requests_per_minute]", "1200")
    page.fill("input[name=credits_per_day_credits]", "2500.5")
    page.click("text=Save limits")
    page.wait_for_selector("text=saved.")
    assert page.inner_text("[data-testid=limits-summary]") == "1,200 requests/min · 2,500.50 credits/day"
    row = page.locator("tr", has_text="laptop")
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    row.locator("button", has_text="Revoke").click()
    page.wait_for_timeout(300)
    assert dialogs and dialogs[0].startswith("Revoke key") and "cannot be undone" in dialogs[0]
    assert page.locator("tr", has_text="laptop").locator(".pill.error").count() == 0  # dismissed: kept
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    page.wait_for_selector("text=revoked.")
    assert page.locator("tr", has_text="laptop").locator(".pill.error").inner_text() == "revoked"
    _both_widths(page, "keys")

    # A styled 404 (the server runs with DEBUG off).
    page.goto(f"{base}/no/such/page/")
    assert page.locator("[data-testid=not-found]").is_visible()
    _both_widths(page, "not-found")

    assert errors == []
    assert csp_headers and all(h and "script-src 'self'" in h for h in csp_headers), csp_headers


def test_topup_of_777_goes_through_stripe_checkout_and_back(live_server, settings, user, browser):
    """A $7.77 custom amount posts to /api/billing/checkout and follows the Checkout URL; Stripe's
    return to the dashboard lands on the success page for that payment (pending until the webhook).
    Stripe's API is mocked with `responses`."""
    from urllib.parse import parse_qs

    import responses

    ARTIFACTS.mkdir(exist_ok=True)
    settings.STRIPE_SECRET_KEY = "sk_test_browser_key"
    back = f"{live_server.url}/?topup=success&session_id=cs_test_browser"
    session = {
        "id": "cs_test_browser",
        "object": "checkout.session",
        "amount_total": 777,
        "currency": "usd",
        "client_reference_id": str(user.pk),
        "livemode": False,
        "mode": "payment",
        "payment_status": "unpaid",
        "status": "open",
        "url": back,  # stands in for checkout.stripe.com, which redirects back here
    }
    page = browser.new_page(viewport=DESKTOP)
    page.set_default_timeout(30000)  # a loaded CI machine, not a slow page
    with responses.RequestsMock() as stripe_api:
        stripe_api.post("https://api.stripe.com/v1/checkout/sessions", json=session)
        _login(page, live_server.url, "alice", "pw-alice-123")
        page.goto(f"{live_server.url}/topup/")
        page.fill("#custom-usd", "7.77")
        assert page.is_checked("#custom-choice")
        assert page.inner_text("[data-testid=custom-credits]") == "6,756 credits"
        assert page.evaluate(
            "document.getElementById('custom-usd').checkValidity()"
        )  # the browser accepts it
        _both_widths(page, "topup")
        page.click("text=Continue to payment")
        page.wait_for_url(f"{live_server.url}/topup/success/?session_id=cs_test_browser")
        assert "Payment pending" in page.inner_text("[data-testid=topup-outcome]")
        assert "cs_test_browser" in page.inner_text("[data-testid=topup-outcome]")
        _both_widths(page, "topup-pending")
        sent = parse_qs(stripe_api.calls[0].request.body)
    assert sent["line_items[0][price_data][unit_amount]"] == ["777"]
    assert sent["client_reference_id"] == [str(user.pk)]


def test_admin_lists_fit_1400_px_and_show_credits(
    monkeypatch, live_server, django_user_model, make_usage, browser
):
    from billing.services import adjustment_create, topup_apply

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    staff = django_user_model.objects.create_user(
        username="ops", password="pw-ops-123", is_staff=True, is_superuser=True
    )
    dora = django_user_model.objects.create_user(username="dora-with-a-rather-long-name")
    adjustment_create(
        user=dora, amount=12_345_678_000_000, actor=staff, reason="a grant with a long reason " * 3
    )
    topup_apply(
        user=dora, amount_cents=777, payment_intent_id="pi_3PqWertyUiop1234567890", source="api:topup"
    )
    make_usage(dora, model="meta-llama/llama-3.1-70b-instruct", credits=1_234_567_890)
    from gateway.keys import api_key_create

    api_key_create(user=dora, name="a key with a fairly long name for the list")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30000)  # a loaded CI machine, not a slow page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-ops-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    expected = {
        "billing/ledgerentry": "12,345,678.00",
        "billing/creditaccount": "12,352,434.00",  # + the $7.77 top-up's 6,756 credits
        "billing/topup": "$7.77",
        "monitoring/usagerecord": "1,234.57",
        "gateway/apikey": "a key with a fairly long name",
    }
    for path, figure in expected.items():
        page.goto(f"{live_server.url}/admin/{path}/")
        width = page.evaluate("document.documentElement.scrollWidth")
        # The list itself, not only the page: Django scrolls a too-wide table inside its box.
        table = page.evaluate(
            "(() => { const t = document.getElementById('result_list'); const box = t.closest('.results');"
            " return [t.scrollWidth, box.clientWidth]; })()"
        )
        page.screenshot(path=str(ARTIFACTS / f"admin-{path.replace('/', '-')}.png"), full_page=True)
        assert width <= 1400, f"/admin/{path}/ is {width} px wide"
        assert table[0] <= table[1], f"/admin/{path}/: the list is {table[0]} px in a {table[1]} px box"
        if figure:
            assert figure in page.inner_text("#result_list"), path
