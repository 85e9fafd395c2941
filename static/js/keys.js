/* Keys page: copy the new key, and ask before a revoke (it cannot be undone). No inline script:
   the pages run under a Content-Security-Policy without 'unsafe-inline'. */
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  var button = document.getElementById("copy-key");
  if (!button) return;
  button.addEventListener("click", function () {
    var node = document.getElementById(button.dataset.copy);
    var done = function () { button.textContent = "Copied"; };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(node);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      if (document.execCommand("copy")) { done(); } else { button.textContent = "Select and copy"; }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(node.textContent).then(done, fallback);
    } else {
      fallback();
    }
  });
})();
