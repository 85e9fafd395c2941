/* Top-up page: the custom amount (any dollars and cents in range), the credits it buys, and the
   hand-off to Stripe Checkout. The credit formula mirrors billing/credits.py topup_cents_to_micro:
   floor(cents * rate / (100 + markup)) whole credits, rate and markup from the form's data (the
   CREDITS_PER_USD and TOPUP_MARKUP_PERCENT settings); with the defaults floor(cents * 200 / 23). */
(function () {
  "use strict";
  var form = document.getElementById("topup-form");
  if (!form) return;
  var errorBox = document.getElementById("topup-error");
  var custom = document.getElementById("custom-usd");
  var customChoice = document.getElementById("custom-choice");
  var customCredits = document.getElementById("custom-credits");
  var grouped = new Intl.NumberFormat("en-US");

  function cents(text) {
    // "7.77" -> 777; null for anything that is not dollars with at most two decimals.
    var m = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text || "");
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
  }
  var rate = parseInt(form.dataset.creditsPerUsd || "1000", 10);
  // The markup in hundredths of a percent keeps the division exact for markups like 12.5.
  var markupBp = Math.round(parseFloat(form.dataset.markupPercent || "15") * 100);
  function creditsFor(c) {
    // cents * rate / (100 + markup) == cents * rate * 100 / (10000 + markup in hundredths).
    return Math.floor((c * rate * 100) / (10000 + markupBp));
  }
  function showCredits() {
    var c = cents(custom.value);
    customCredits.textContent = c === null ? "" : grouped.format(creditsFor(c)) + " credits";
  }
  custom.addEventListener("focus", function () { customChoice.checked = true; });
  custom.addEventListener("input", function () { customChoice.checked = true; showCredits(); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var picked = form.querySelector("input[name=amount_usd]:checked");
    var amount = picked && picked.value === "custom" ? custom.value.trim() : picked && picked.value;
    errorBox.hidden = true;
    if (picked && picked.value === "custom" && (cents(amount) === null || !custom.checkValidity())) {
      errorBox.textContent = "Enter an amount between $" + custom.min + " and $" + custom.max + ", e.g. 7.77.";
      errorBox.hidden = false;
      return;
    }
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": form.csrfmiddlewaretoken.value},
      body: JSON.stringify({amount_usd: amount})
    }).then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (res.ok && res.body.checkout_url) { window.location.assign(res.body.checkout_url); return; }
        errorBox.textContent = (res.body.error && res.body.error.message) || "Checkout could not start.";
        errorBox.hidden = false;
      })
      .catch(function () { errorBox.textContent = "Network error; try again."; errorBox.hidden = false; });
  });
})();
