/* What the dashboard and the operator page share: where the token comes from and where it is
 * kept, polling the API with conditional requests, and telling the reader how fresh the numbers
 * are or what went wrong. Plain JavaScript, no framework and no build step.
 *
 * The token comes from #token=… in the address (wall screens; then removed from the visible
 * address) or from the form, and is kept in sessionStorage: it never goes into a query string,
 * so it never reaches a server log, a proxy or a Referer. It is sent only to the API, by fetch.
 *
 * What a failed poll does depends on whose fault it is. 401 and 403 are the token's: the page
 * asks for another. Any other 4xx is the request's (a ?tz= the API does not know, say): asking
 * again would get the same answer, so the page says what the API said and waits for the input
 * to change (another token, or another address). 5xx and network failures pass: the page keeps
 * polling. It never claims numbers it does not have.
 *
 * Dates, times and numbers are written in the page's language (<html lang>), not the browser's:
 * the words around them are the page's, and "Appointments for domingo, 6 de dezembro" mixed two.
 */
(function () {
  "use strict";

  var MIN_POLL_SECONDS = 1;
  var MAX_POLL_SECONDS = 300;
  var PASSING = { 408: true, 429: true };  // 4xx that say "later", not "never"
  var LANGUAGE = document.documentElement.lang || "en";

  function pollSeconds(fallback) {
    // ?poll=N asks for another interval (demos, tests), within bounds.
    var asked = new URLSearchParams(window.location.search).get("poll");
    var seconds = asked === null || asked.trim() === "" ? NaN : Number(asked);
    if (!Number.isFinite(seconds)) return fallback;
    return Math.min(MAX_POLL_SECONDS, Math.max(MIN_POLL_SECONDS, seconds));
  }

  function takeTokenFromFragment() {
    var fragment = window.location.hash.replace(/^#/, "");
    if (!fragment) return null;
    var params = new URLSearchParams(fragment);
    if (!params.has("token")) return null;
    var token = (params.get("token") || "").trim();
    params.delete("token");
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + window.location.search +
      (rest ? "#" + rest : ""));
    return token || null;
  }

  var storage = {
    get: function (key) {
      try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
    },
    set: function (key, value) {
      try { window.sessionStorage.setItem(key, value); } catch (e) { /* kept in memory only */ }
    },
    remove: function (key) {
      try { window.sessionStorage.removeItem(key); } catch (e) { /* nothing stored */ }
    }
  };

  function field(name) {
    return document.querySelector('[data-field="' + name + '"]');
  }

  function setField(name, text) {
    var element = field(name);
    if (element) element.textContent = text;
  }

  /* A time of day as the reader should see it: in `zone` (an IANA name) when the page knows the
   * zone its numbers are for, else in the browser's; the zone's short name always follows, so a
   * time is never ambiguous. On the 24-hour clock, which needs no words of any language. */
  function clockTime(when, zone) {
    var options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
                    timeZoneName: "short" };
    if (zone) options.timeZone = zone;
    try {
      return when.toLocaleTimeString(LANGUAGE, options);
    } catch (e) {  // a zone this browser's time zone data does not know yet
      delete options.timeZone;
      return when.toLocaleTimeString(LANGUAGE, options);
    }
  }

  function setTime(name, when, zone) {
    var element = field(name);
    if (!element) return;
    element.textContent = "";
    var time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.dataset.zone = zone || "";
    time.textContent = clockTime(when, zone);
    element.appendChild(time);
  }

  var CACHE_MEANING = {
    HIT: "cache (HIT)",
    MISS: "database (MISS, now cached)",
    BYPASS: "database (BYPASS: cache unavailable)",
    STALE: "cache (STALE: database unavailable, last numbers kept)"
  };

  function describeCache(header, notModified) {
    if (!header) return notModified ? "unchanged" : "–";
    var meaning = CACHE_MEANING[header] || header;
    return notModified ? meaning + ", unchanged" : meaning;
  }

  /* The API's own words for a refusal: the messages of the inputs at fault (its `errors`, one
   * list per field), else its `message`. */
  function apiProblem(payload) {
    if (!payload || typeof payload !== "object") return "";
    var errors = payload.errors;
    var parts = [];
    if (errors && typeof errors === "object") {
      Object.keys(errors).forEach(function (name) {
        var said = [].concat(errors[name]).filter(function (m) { return typeof m === "string"; });
        if (said.length) parts.push(name + ": " + said.join(" "));
      });
    }
    if (parts.length) return parts.join("; ");
    return typeof payload.message === "string" ? payload.message : "";
  }

  /* Poll options.endpoint every interval with the token and call options.render(data, now) with
   * each new body; render returns true when the numbers it shows changed. Optional:
   * - options.query(): the query string to add to the endpoint;
   * - options.answered(headers): called with the headers of every answer that carries numbers
   *   (200 and 304), before the times are written;
   * - options.timeZone(): the IANA zone the page's times are shown in (default: the browser's);
   * - options.context = {endpoint, render(data)}: fetched with the token once per token, beside
   *   the polls (a failure is tried again with the next poll; refusals are left to the polls).
   *
   * With <body data-stream-endpoint> (and live.js loaded) the page is live: the mega-stats stream
   * says when the numbers change, and each event is followed by one conditional poll (the answer
   * and its headers, the zone and date, in one task, as polls show them). Polls every interval
   * resume whenever the stream is not live.
   */
  function start(options) {
    var body = document.body;
    var tokenKey = body.dataset.tokenKey;
    var endpoint = body.dataset.endpoint + (options.query ? options.query() : "");
    var seconds = pollSeconds(Number(body.dataset.pollSeconds) || 30);
    var form = document.getElementById("token-form");
    var input = document.getElementById("token-input");
    var reason = document.getElementById("token-reason");
    var changeButton = document.getElementById("change-token");
    var message = document.getElementById("message");
    var token = takeTokenFromFragment() || storage.get(tokenKey);
    var etag = null;
    var timer = null;
    var inFlight = false;
    var stopped = false;     // a 4xx refused this input: no more polls until it changes
    var numbersOf = null;    // when the numbers on the page were answered; null: none shown
    var contextOf = null;    // the token options.context was last shown for
    var again = false;       // something changed while a poll was in flight: poll once more
    var mode = "polling";    // "live" while the stream (this tab's or another's) is open
    var live = null;

    if (token) storage.set(tokenKey, token);
    showMode("polling");

    function showMode(next) {
      mode = next;
      body.dataset.live = next;
      setField("interval", next === "live" ? "live" : "every " + seconds + " s (polling)");
    }

    function zone() { return options.timeZone ? options.timeZone() : undefined; }

    function setState(state) { body.dataset.state = state; }

    function say(text, kind) {
      message.textContent = text;
      message.className = "message " + (kind || "");
      message.hidden = !text;
    }

    // Times already on the page follow when the zone becomes known (or changes).
    function retime() {
      document.querySelectorAll("[data-field] > time[data-zone]").forEach(function (time) {
        var now = zone() || "";
        if (time.dataset.zone === now) return;
        time.dataset.zone = now;
        time.textContent = clockTime(new Date(time.dateTime), now);
      });
    }

    function answered(headers) {
      if (options.answered) options.answered(headers);
      retime();
    }

    function whatIsShown() {
      return numbersOf ? "Showing the numbers of " + clockTime(numbersOf, zone()) : "No numbers to show";
    }

    function askForToken(why, refused) {
      token = null;
      etag = null;
      stopped = false;
      storage.remove(tokenKey);
      restartLive();
      reason.textContent = why;
      reason.className = refused ? "reason refused" : "reason";
      form.hidden = false;
      changeButton.hidden = true;
      say("", "");
      setState("needs-token");
      input.focus();
    }

    function schedule() {
      window.clearTimeout(timer);
      if (mode !== "live") timer = window.setTimeout(poll, seconds * 1000);
    }

    function readJson(response) {
      return response.json().catch(function () { return null; });
    }

    function authorized() {
      return { Authorization: "Bearer " + token, Accept: "application/json" };
    }

    function fetchContext() {
      var context = options.context;
      if (!context || !context.endpoint || contextOf === token) return;
      var sentWith = token;
      fetch(context.endpoint, { headers: authorized(), cache: "no-store" }).then(function (response) {
        return response.ok ? readJson(response) : null;
      }).then(function (payload) {
        if (!payload || sentWith !== token) return;
        contextOf = sentWith;
        context.render(payload);
        retime();
      }).catch(function () { /* tried again with the next poll */ });
    }

    function stopAsked(response, payload) {
      var said = apiProblem(payload);
      stopped = true;
      restartLive();  // no stream either, until the input changes
      say("The server refused this request (" + response.status + ")" + (said ? ": " + said : ".") + " " +
        whatIsShown() + "; not asking again until the address or the token changes.", "error");
      setState("refused");
    }

    function failed(text) {
      say(text + " " + whatIsShown() + "; trying again in " + seconds + " s.", "error");
    }

    function poll() {
      window.clearTimeout(timer);
      if (!token) {
        askForToken("Paste a token to see the numbers.");
        return;
      }
      if (stopped) return;
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      fetchContext();
      var sentWith = token;
      var headers = authorized();
      if (etag) headers["If-None-Match"] = etag;
      // no-store: the browser's own cache stays out of the way; this page does the revalidation.
      fetch(endpoint, { headers: headers, cache: "no-store" }).then(function (response) {
        if (sentWith !== token) return;  // the token changed meanwhile: this answer is not for it
        var now = new Date();
        if (response.status === 304) {
          answered(response.headers);
          setTime("checked", now, zone());
          setField("cache", describeCache(response.headers.get("X-Cache"), true));
          numbersOf = now;
          say("", "");
          setState("ok");
          return;
        }
        return readJson(response).then(function (payload) {
          if (sentWith !== token) return;
          var said = apiProblem(payload);
          var numbers = response.ok && payload !== null;
          // What the numbers are for changes in the same task as the numbers: never one without
          // the other.
          if (numbers) answered(response.headers);
          setTime("checked", now, zone());
          setField("cache", describeCache(response.headers.get("X-Cache"), false));
          if (response.status === 401 || response.status === 403) {
            askForToken((said || "The token was refused.") + " Paste a valid token.", true);
            return;
          }
          if (response.status >= 400 && response.status < 500 && !PASSING[response.status]) {
            stopAsked(response, payload);
            return;
          }
          if (!numbers) {
            failed("The server answered " + response.status + (said ? ": " + said : "."));
            setState("error");
            return;
          }
          etag = response.headers.get("ETag");
          numbersOf = now;
          say("", "");
          if (options.render(payload, now)) setTime("changed", now, zone());
          setState("ok");
        });
      }).catch(function () {
        if (sentWith !== token) return;
        failed("Cannot reach the server.");
        setState("offline");
      }).then(function () {
        inFlight = false;
        if (!token || stopped) return;
        if (sentWith !== token || again) {
          again = false;
          poll();
        } else {
          schedule();
        }
      });
    }

    function startLive() {
      var streamEndpoint = body.dataset.streamEndpoint;
      if (!streamEndpoint || !window.AlignWorkLive) return;
      live = window.AlignWorkLive.connect({
        token: function () { return stopped ? null : token; },
        url: function (lastId) {
          var query = options.query ? options.query() : "";
          var last = etag || lastId;
          return streamEndpoint + query + (last ? (query ? "&" : "?") + "lastEventId=" + encodeURIComponent(last) : "");
        },
        onEvent: function (id) { if (token && !stopped && id !== etag) poll(); },
        onMode: function (next) {
          showMode(next);
          if (next === "live") window.clearTimeout(timer);
          else if (token && !stopped && !inFlight) schedule();
        },
        onRefused: function () { poll(); }
      });
    }

    function restartLive() {
      if (live) live.restart();
    }

    function useToken(given) {
      window.clearTimeout(timer);
      token = given;
      etag = null;
      stopped = false;
      storage.set(tokenKey, token);
      form.hidden = true;
      changeButton.hidden = false;
      say("", "");
      setState("loading");
      restartLive();
      poll();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var pasted = input.value.trim().replace(/^Bearer\s+/i, "");
      if (!pasted) return;
      input.value = "";
      useToken(pasted);
    });

    changeButton.addEventListener("click", function () {
      window.clearTimeout(timer);
      askForToken("Paste another token.");
    });

    // A wall screen given another #token=… without reloading: the input changed.
    window.addEventListener("hashchange", function () {
      var given = takeTokenFromFragment();
      if (given) useToken(given);
    });

    if (token) {
      form.hidden = true;
      changeButton.hidden = false;
      setState("loading");
    }
    startLive();
    restartLive();
    poll();
  }

  window.AlignWork = { start: start, language: LANGUAGE };
}());
