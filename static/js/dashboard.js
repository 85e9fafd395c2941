/* Dashboard charts (Chart.js, vendored under static/vendor). The tables and figures on the page
   work without it; the charts are an enhancement. */
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var palette = ["#3355ff", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#06aed4", "#f04438", "#667085"];
  var numbers = function (list) { return list.map(function (v) { return parseFloat(v); }); };
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  // Figures as the page prints them: thousands separators, two decimals for credits.
  var fmt = new Intl.NumberFormat("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 6});
  var creditsLabel = function (ctx) { return " " + fmt.format(ctx.parsed) + " credits"; };

  new Chart(document.getElementById("chart-daily"), {
    type: "bar",
    data: {
      labels: data.daily.labels,
      datasets: [
        {type: "bar", label: "Credits", data: numbers(data.daily.credits), backgroundColor: "#3355ff", yAxisID: "y"},
        {type: "line", label: "Calls", data: data.daily.requests, borderColor: "#12b76a", backgroundColor: "#12b76a",
         tension: 0.3, yAxisID: "calls"}
      ]
    },
    options: {
      interaction: {mode: "index", intersect: false},
      scales: {
        y: {beginAtZero: true, title: {display: true, text: "credits"},
            ticks: {callback: function (v) { return Number(v).toLocaleString("en-US"); }}},
        calls: {beginAtZero: true, position: "right", grid: {drawOnChartArea: false}, ticks: {precision: 0},
                title: {display: true, text: "calls"}}
      }
    }
  });

  var empty = function (labels) { return labels.length ? labels : ["no calls yet"]; };
  var modelsCanvas = document.getElementById("chart-models");
  // Absent when nothing was spent: the card says so in words instead of drawing an empty ring.
  if (modelsCanvas && data.by_model.labels.length) {
    new Chart(modelsCanvas, {
      type: "doughnut",
      data: {
        labels: data.by_model.labels,
        datasets: [{label: "Credits", data: numbers(data.by_model.credits), backgroundColor: palette}]
      },
      options: {plugins: {legend: {position: "bottom"}, tooltip: {callbacks: {label: creditsLabel}}}}
    });
  }

  new Chart(document.getElementById("chart-providers"), {
    type: "bar",
    data: {
      labels: empty(data.by_provider.labels),
      datasets: [{label: "Calls", data: data.by_provider.requests.length ? data.by_provider.requests : [0],
                  backgroundColor: palette}]
    },
    options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: {beginAtZero: true, ticks: {precision: 0}}}}
  });
})();
