/* The clinic dashboard: mega-stats' confirmed and pending counts for four periods, headed by the
 * clinic's name and by the zone and local date the numbers are for.
 *
 * The name comes from the tenant endpoint (it is free text, so no header can carry it); the zone
 * and date come from the headers of each mega-stats answer, so they are those of the numbers
 * shown, also across midnight, and never the browser's. Until an answer names them, none is shown.
 */
(function () {
  "use strict";

  var PERIODS = ["today", "week", "month", "nextMonth"];
  var STATUSES = ["confirmed", "pending"];
  var shown = null;
  var language = window.AlignWork.language;  // the page's, as the words around the numbers
  var format = new Intl.NumberFormat(language);
  var statsZone = null;   // the zone of the numbers shown (X-Stats-Zone)
  var clinicZone = null;  // the clinic's own, until the numbers name theirs
  var pageTitle = document.title;

  function field(name) {
    return document.querySelector('[data-field="' + name + '"]');
  }

  function zoneQuery() {
    // ?tz=Area/City counts in another zone than the clinic's own (the API checks it).
    var tz = new URLSearchParams(window.location.search).get("tz");
    return tz ? "?tz=" + encodeURIComponent(tz) : "";
  }

  function longDate(iso) {
    // A calendar date, not an instant: formatted in UTC so no zone can move it to another day.
    var parts = iso.split("-").map(Number);
    var noon = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2], 12));
    return new Intl.DateTimeFormat(language, {
      weekday: "long", year: "numeric", month: "long", day: "numeric", timeZone: "UTC"
    }).format(noon);
  }

  function showScope(headers) {
    var zone = headers.get("X-Stats-Zone");
    var day = headers.get("X-Stats-Local-Date");
    if (!zone || !/^\d{4}-\d{2}-\d{2}$/.test(day || "")) return;
    statsZone = zone;
    var date = field("local-date");
    date.dateTime = day;
    date.textContent = longDate(day);
    field("zone").textContent = zone;
    field("scope").hidden = false;
  }

  function showClinic(tenant) {
    if (typeof tenant.name !== "string" || !tenant.name) return;
    field("clinic").textContent = tenant.name;
    document.title = tenant.name + " · " + pageTitle;
    if (typeof tenant.timezone === "string") clinicZone = tenant.timezone;
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

  window.AlignWork.start({
    render: render,
    query: zoneQuery,
    answered: showScope,
    timeZone: function () { return statsZone || clinicZone || undefined; },
    context: { endpoint: document.body.dataset.tenantEndpoint, render: showClinic }
  });
}());
