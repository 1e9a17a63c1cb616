// transitwatch pages: live filtering of the target list, and the charts of a target page.
"use strict";

(function () {
  // The same rule as the API's ?q=: every word of the query is part of the row's haystack.
  function setUpSearch() {
    var input = document.getElementById("target-search");
    var table = document.getElementById("targets");
    if (!input || !table) return;
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-search]"));
    var count = document.getElementById("target-count");
    function apply() {
      var words = input.value.toLowerCase().split(/[\s,]+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var hay = row.getAttribute("data-search");
        var ok = words.every(function (w) { return hay.indexOf(w) >= 0; });
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      if (count) count.textContent = String(shown);
    }
    input.addEventListener("input", apply);
    apply();
  }

  function drawCharts() {
    var holder = document.getElementById("figures");
    if (!holder) return;
    var figures = JSON.parse(holder.textContent);
    var config = {
      responsive: true,
      displaylogo: false,
      displayModeBar: window.innerWidth >= 640 ? "hover" : false, // on a phone it covers the chart
      modeBarButtonsToRemove: ["lasso2d", "select2d"],
    };
    var share = document.getElementById("share-chart");
    var vis = document.getElementById("visibility-chart");
    Promise.all([
      window.Plotly.newPlot(share, figures.share.data, figures.share.layout, config),
      window.Plotly.newPlot(vis, figures.visibility.data, figures.visibility.layout, config),
    ]).then(function () {
      // upstream event markers carry their event page's path
      share.on("plotly_click", function (ev) {
        var p = ev.points && ev.points[0];
        if (p && typeof p.customdata === "string" && p.customdata.indexOf("/events/") === 0) {
          window.location.href = p.customdata;
        }
      });
      document.body.setAttribute("data-charts", "ready");
    });
  }

  document.addEventListener("DOMContentLoaded", setUpSearch);
  // plotly.js is deferred: wait for the whole page before drawing
  window.addEventListener("load", function () {
    if (document.getElementById("figures") && window.Plotly) drawCharts();
  });
})();
