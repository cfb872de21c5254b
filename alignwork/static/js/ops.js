/* The operator page: cache-metrics, and a chart of the hit rate between successive polls.
 *
 * cache-metrics gives totals since the server started, so its hit_rate moves slowly; the chart
 * shows what happened between two polls instead (new hits over new lookups), drawn as inline SVG
 * from the polls this page has made. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WINDOW_MS = 15 * 60 * 1000;
  var HEIGHT = 160, TOP = 12, BOTTOM = 136, LEFT = 44, RIGHT = 10;
  var samples = [];      // {at: ms, rate: 0..1}
  var previous = null;   // the last totals, to take differences from
  var shown = null;

  function text(value, name, unit) {
    if (value === null || value === undefined) return "–";
    if (name === "hit_rate") return (value * 100).toFixed(1) + " %";
    var number = typeof value === "number" && !Number.isInteger(value) ? value.toFixed(2) : String(value);
    return unit ? number + " " + unit : number;
  }

  function showMetrics(metrics) {
    document.querySelectorAll("[data-metric]").forEach(function (cell) {
      var name = cell.dataset.metric;
      var value = metrics[name];
      cell.dataset.value = value === null || value === undefined ? "" : String(value);
      cell.textContent = text(value, name, cell.dataset.unit);
    });
  }

  function record(metrics, now) {
    var lookups = metrics.total_requests;
    if (previous && lookups >= previous.total && metrics.hits >= previous.hits) {
      var newLookups = lookups - previous.total;
      if (newLookups > 0) samples.push({ at: now.getTime(), rate: (metrics.hits - previous.hits) / newLookups });
    }
    // A restarted server starts from zero again: the next poll measures from here.
    previous = { total: lookups, hits: metrics.hits };
    samples = samples.filter(function (s) { return now.getTime() - s.at <= WINDOW_MS; });
  }

  function element(name, attributes, content) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (content) node.textContent = content;
    return node;
  }

  function y(rate) { return BOTTOM - rate * (BOTTOM - TOP); }

  function ago(ms) {
    var seconds = Math.round(ms / 1000);
    return seconds < 120 ? seconds + " s ago" : Math.round(seconds / 60) + " min ago";
  }

  function draw(now) {
    var svg = document.getElementById("hit-rate-chart");
    // Drawn in the SVG's own pixels, so text and dots keep their shape at any width.
    var width = Math.max(240, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
    var grid = svg.querySelector(".grid");
    var dots = svg.querySelector(".dots");
    grid.textContent = "";
    dots.textContent = "";
    [0, 0.5, 1].forEach(function (rate) {
      grid.appendChild(element("line", { x1: LEFT, x2: width - RIGHT, y1: y(rate), y2: y(rate) }));
      grid.appendChild(element("text", { x: LEFT - 6, y: y(rate) + 4, "text-anchor": "end" }, rate * 100 + " %"));
    });
    // The time axis runs from the oldest sample kept (at most 15 minutes back) to now.
    var end = now.getTime();
    var start = samples.length ? Math.min(samples[0].at, end - 1000) : end - WINDOW_MS;
    var span = end - start;
    grid.appendChild(element("text", { x: LEFT, y: HEIGHT - 6, "text-anchor": "start" }, ago(span)));
    grid.appendChild(element("text", { x: width - RIGHT, y: HEIGHT - 6, "text-anchor": "end" }, "now"));
    var points = samples.map(function (s) {
      var x = LEFT + ((s.at - start) / span) * (width - LEFT - RIGHT);
      return [x.toFixed(1), y(s.rate).toFixed(1)];
    });
    svg.querySelector(".line").setAttribute("points", points.map(function (p) { return p.join(","); }).join(" "));
    points.forEach(function (p) { dots.appendChild(element("circle", { cx: p[0], cy: p[1], r: 3.5 })); });
    var count = document.querySelector('[data-field="samples"]');
    count.textContent = samples.length ? samples.length + (samples.length === 1 ? " sample" : " samples") +
      ", latest " + (samples[samples.length - 1].rate * 100).toFixed(1) + " %" : "no lookups between polls yet";
  }

  function render(metrics, now) {
    showMetrics(metrics);
    record(metrics, now);
    draw(now);
    var key = JSON.stringify(metrics);
    var changed = key !== shown;
    shown = key;
    return changed;
  }

  window.AlignWork.start({ render: render });
}());
