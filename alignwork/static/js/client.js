/* What the dashboard and the operator page share: where the token comes from and where it is
 * kept, polling the API with conditional requests, and telling the reader how fresh the numbers
 * are or what went wrong. Plain JavaScript, no framework and no build step.
 *
 * The token comes from #token=… in the address (wall screens; then removed from the visible
 * address) or from the form, and is kept in sessionStorage: it never goes into a query string,
 * so it never reaches a server log, a proxy or a Referer. It is sent only to the API, by fetch.
 */
(function () {
  "use strict";

  var MIN_POLL_SECONDS = 1;
  var MAX_POLL_SECONDS = 300;

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

  function setTime(name, when) {
    var element = field(name);
    if (!element) return;
    element.textContent = "";
    var time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    element.appendChild(time);
  }

  var CACHE_MEANING = {
    HIT: "cache (HIT)",
    MISS: "database (MISS, now cached)",
    BYPASS: "database (BYPASS: cache unavailable)"
  };

  function describeCache(header, notModified) {
    if (!header) return notModified ? "unchanged" : "–";
    var meaning = CACHE_MEANING[header] || header;
    return notModified ? meaning + ", unchanged" : meaning;
  }

  /* Poll options.endpoint every interval with the token and call options.render(data) with each
   * new body; render returns true when the numbers it shows changed. */
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

    if (token) storage.set(tokenKey, token);
    setField("interval", "every " + seconds + " s");

    function setState(state) { body.dataset.state = state; }

    function say(text, kind) {
      message.textContent = text;
      message.className = "message " + (kind || "");
      message.hidden = !text;
    }

    function askForToken(why, refused) {
      token = null;
      etag = null;
      storage.remove(tokenKey);
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
      timer = window.setTimeout(poll, seconds * 1000);
    }

    function readJson(response) {
      return response.json().catch(function () { return null; });
    }

    function poll() {
      window.clearTimeout(timer);
      if (!token) {
        askForToken("Paste a token to see the numbers.");
        return;
      }
      if (inFlight) return;
      inFlight = true;
      var headers = { Authorization: "Bearer " + token, Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      // no-store: the browser's own cache stays out of the way; this page does the revalidation.
      fetch(endpoint, { headers: headers, cache: "no-store" }).then(function (response) {
        var now = new Date();
        setTime("checked", now);
        setField("cache", describeCache(response.headers.get("X-Cache"), response.status === 304));
        if (response.status === 304) {
          say("", "");
          setState("ok");
          return;
        }
        return readJson(response).then(function (payload) {
          var text = payload && typeof payload.message === "string" ? payload.message : "";
          if (response.status === 401 || response.status === 403) {
            askForToken((text || "The token was refused.") + " Paste a valid token.", true);
            return;
          }
          if (!response.ok || payload === null) {
            say("The server answered " + response.status + (text ? ": " + text : "") +
              ". Showing the last numbers; trying again in " + seconds + " s.", "error");
            setState("error");
            return;
          }
          etag = response.headers.get("ETag");
          say("", "");
          if (options.render(payload, now)) setTime("changed", now);
          setState("ok");
        });
      }).catch(function () {
        say("Cannot reach the server. Showing the last numbers; trying again in " + seconds + " s.", "error");
        setState("offline");
      }).then(function () {
        inFlight = false;
        if (token) schedule();
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var pasted = input.value.trim().replace(/^Bearer\s+/i, "");
      if (!pasted) return;
      token = pasted;
      etag = null;
      storage.set(tokenKey, token);
      input.value = "";
      form.hidden = true;
      changeButton.hidden = false;
      setState("loading");
      poll();
    });

    changeButton.addEventListener("click", function () {
      window.clearTimeout(timer);
      askForToken("Paste another token.");
    });

    if (token) {
      form.hidden = true;
      changeButton.hidden = false;
      setState("loading");
    }
    poll();
  }

  window.AlignWork = { start: start };
}());
