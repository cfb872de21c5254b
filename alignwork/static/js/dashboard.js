/* The clinic dashboard: mega-stats' confirmed and pending counts for four periods. */
(function () {
  "use strict";

  var PERIODS = ["today", "week", "month", "nextMonth"];
  var STATUSES = ["confirmed", "pending"];
  var shown = null;
  var format = new Intl.NumberFormat();

  function zoneQuery() {
    // ?tz=Area/City counts in another zone than the clinic's own (the API checks it).
    var tz = new URLSearchParams(window.location.search).get("tz");
    var label = document.querySelector('[data-field="zone"]');
    if (label) label.textContent = tz ? "in " + tz : "";
    return tz ? "?tz=" + encodeURIComponent(tz) : "";
  }

  function render(stats) {
    var key = JSON.stringify(PERIODS.map(function (period) {
      return STATUSES.map(function (status) { return stats[period][status]; });
    }));
    PERIODS.forEach(function (period) {
      STATUSES.forEach(function (status) {
        var value = stats[period][status];
        var cell = document.querySelector('[data-period="' + period + '"][data-status="' + status + '"]');
        cell.dataset.value = String(value);
        cell.textContent = format.format(value);
      });
    });
    var changed = key !== shown;
    shown = key;
    return changed;
  }

  window.AlignWork.start({ render: render, query: zoneQuery });
}());
