/* Playground: a multi-turn conversation through POST /api/llm/chat with the session and CSRF
   token, streamed (SSE: {"content"} pieces, then {"response"}, then [DONE]) or not; the available
   balance is re-read after every call; a 402 links to the top-up page. */
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) return;
  var F = window.SmartSpecFormat;
  var send = document.getElementById("send");
  var errorBox = document.getElementById("error");
  var conversation = document.getElementById("conversation");
  var history = [];

  function show(id, text) { document.getElementById(id).textContent = text; }
  function bubble(role, text) {
    var node = document.createElement("div");
    node.className = "turn " + role;
    node.dataset.role = role;
    var who = document.createElement("div");
    who.className = "who muted small";
    who.textContent = role === "user" ? "You" : "Assistant";
    var body = document.createElement("div");
    body.className = "answer";
    body.textContent = text;
    if (role === "assistant") body.dataset.testid = "answer";
    node.appendChild(who); node.appendChild(body);
    conversation.appendChild(node);
    return body;
  }
  function fail(message, status) {
    errorBox.textContent = message;
    if (status === 402) {
      errorBox.appendChild(document.createTextNode(" "));
      var link = document.createElement("a");
      link.href = form.dataset.topupUrl; link.textContent = "Top up credits";
      link.dataset.testid = "topup-link";
      errorBox.appendChild(link);
    }
    errorBox.hidden = false;
  }
  function refreshBalance() {
    return fetch(form.dataset.balanceUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (b) {
        if (!b) return;
        var available = (Number(b.credits) - Number(b.held)).toFixed(6);
        document.querySelectorAll("[data-testid=available]").forEach(function (n) { n.textContent = F.credits(available); });
        document.querySelectorAll("[data-testid=available-usd]").forEach(function (n) { n.textContent = F.usd((Number(available) / 1000).toFixed(9)); });
      })
      .catch(function () {});
  }
  function facts(d) {
    show("r-model", d.model + " · " + d.provider + (d.fallback_used ? " (fallback)" : ""));
    show("r-tokens", F.count(d.usage.prompt_tokens) + " prompt + " + F.count(d.usage.completion_tokens) + " completion");
    show("r-credits", F.credits(d.credits_charged) + " credits (" + F.usd(d.cost_usd) + ")");
    show("r-latency", F.count(d.latency_ms) + " ms");
    document.getElementById("result").hidden = false;
  }
  function errorOf(r) {
    return r.json().then(function (data) {
      return (data.error && data.error.message) || "The call failed.";
    }, function () { return "The call failed (HTTP " + r.status + ")."; });
  }
  function readStream(response, target) {
    // Server-sent events over fetch: split on blank lines, one JSON payload per `data:` line.
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "", text = "", final = null, streamError = null;
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, {stream: true});
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (event) {
          var line = event.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; })[0];
          if (!line) return;
          var payload = line.slice(6);
          if (payload === "[DONE]") return;
          var data = JSON.parse(payload);
          if (data.content) { text += data.content; target.textContent = text; }
          if (data.response) final = data.response;
          if (data.error) streamError = data.error.message || "The stream failed.";
        });
        return pump();
      });
    }
    return pump().then(function () { return {text: text, response: final, error: streamError}; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var prompt = form.prompt.value.trim();
    if (!prompt) return;
    var maxTokens = parseInt(form.max_tokens.value, 10);
    if (!form.max_tokens.checkValidity()) { fail("Max tokens must be between 1 and " + form.max_tokens.max + "."); return; }
    var turn = {role: "user", content: prompt};
    var body = {
      messages: history.concat([turn]),
      task_type: form.task_type.value,
      budget_priority: form.budget_priority.value,
      max_tokens: maxTokens || undefined,
      stream: form.stream.checked
    };
    if (form.model.value !== "auto") body.model = form.model.value;
    send.disabled = true; send.textContent = "Sending…"; errorBox.hidden = true;
    bubble("user", prompt);
    var target = bubble("assistant", "…");
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": form.csrfmiddlewaretoken.value},
      body: JSON.stringify(body)
    }).then(function (r) {
      if (!r.ok) {
        return errorOf(r).then(function (message) { target.parentNode.remove(); conversation.lastChild.remove(); fail(message, r.status); });
      }
      var answered = body.stream ? readStream(r, target) : r.json().then(function (d) {
        target.textContent = d.content; return {text: d.content, response: d, error: null};
      });
      return answered.then(function (result) {
        if (result.error) { fail(result.error); }
        if (result.response) {
          history.push(turn, {role: "assistant", content: result.text});
          target.textContent = result.text;
          form.prompt.value = "";
          facts(result.response);
        }
      });
    })
      .catch(function () { fail("Network error; try again."); })
      .finally(function () { send.disabled = false; send.textContent = "Send"; refreshBalance(); });
  });

  document.getElementById("reset").addEventListener("click", function () {
    history = []; conversation.textContent = ""; errorBox.hidden = true;
    document.getElementById("result").hidden = true;
  });
})();
