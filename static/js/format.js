/* Figures as the pages print them (billing/credits.py credits_display / usd_display): thousands
   separators, two decimals, more only below a cent's worth (10 credits, or $0.01). Input is the
   API's exact decimal string ("1000.000000"). */
(function () {
  "use strict";
  function trimmed(text, minPlaces) {
    var parts = text.split(".");
    var frac = (parts[1] || "").replace(/0+$/, "");
    while (frac.length < minPlaces) frac += "0";
    return parts[0] + "." + frac;
  }
  function grouped(whole) { return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function show(value, fullBelow) {
    var n = Number(value);
    if (!isFinite(n)) return String(value);
    var sign = n < 0 ? "-" : "";
    var abs = Math.abs(n);
    if (abs === 0 || abs >= fullBelow) {
      var fixed = abs.toFixed(2).split(".");
      return sign + grouped(fixed[0]) + "." + fixed[1];
    }
    var text = String(value).replace(/^-/, "");
    return sign + trimmed(text.indexOf(".") < 0 ? text + ".00" : text, 2);
  }
  window.SmartSpecFormat = {
    credits: function (value) { return show(value, 10); },
    usd: function (value) { var t = show(value, 0.01); return t.charAt(0) === "-" ? "-$" + t.slice(1) : "$" + t; },
    count: function (value) { return grouped(String(Math.round(Number(value) || 0))); }
  };
})();
