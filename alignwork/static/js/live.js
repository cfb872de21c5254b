/* The dashboard's live numbers: the mega-stats stream (server-sent events), read with fetch() so
 * that the token travels in the Authorization header (EventSource cannot send it), shared by every
 * tab of this browser showing the same numbers.
 *
 * One stream per browser: HTTP/1.1 allows six connections per origin, and a clinic opens several
 * tabs. The tabs elect a leader with the Web Locks API (the lock is released when its tab closes,
 * and a waiting tab takes it over); only the leader opens the stream, and it hands every event and
 * whether it is live to the other tabs over a BroadcastChannel. A browser without Web Locks
 * streams in every tab.
 *
 * After a failure (refused with 429 or 503, a network error, a stream gone quiet past two
 * keep-alives) the page falls back to polling and tries the stream again later (Retry-After, or
 * a growing delay), upgrading back when it opens. 400, 401 and 403 are the request's or the
 * token's: the stream is not tried again until they change; the polls say why.
 */
(function () {
  "use strict";

  var QUIET_LIMIT_MS = 40000;     // two keep-alives (15 s) and some: the stream is dead
  var MAX_DELAY_MS = 300000;
  var CHANNEL = "alignwork.stream";

  function hash(text) {
    // Names this tab's stream (token and address) without putting the token in a lock name.
    var h = 5381;
    for (var i = 0; i < text.length; i++) h = ((h * 33) ^ text.charCodeAt(i)) >>> 0;
    return h.toString(36);
  }

  /* options: url(lastId) the stream's address; token(); onEvent(id, data) for each stats event;
   * onMode("live" | "polling"); onRefused(status) for 400, 401, 403. Returns {restart, stop}. */
  function connect(options) {
    var channel = "BroadcastChannel" in window ? new BroadcastChannel(CHANNEL) : null;
    var locks = navigator.locks;
    var key = null;          // the stream this tab wants
    var lastId = null;
    var leading = false;
    var release = null;      // resolves the leader's lock
    var controller = null;
    var timer = null;
    var quiet = null;
    var failures = 0;
    var retryMs = 3000;
    var mode = null;

    function setMode(next) {
      if (leading && channel) channel.postMessage({ key: key, type: "mode", mode: next });
      if (next === mode) return;
      mode = next;
      options.onMode(next);
    }

    function deliver(id, data) {
      lastId = id;
      if (leading && channel) channel.postMessage({ key: key, type: "stats", id: id, data: data });
      options.onEvent(id, data);
    }

    function halt() {
      window.clearTimeout(timer);
      window.clearTimeout(quiet);
      if (controller) controller.abort();
      controller = null;
    }

    function later(ms) {
      window.clearTimeout(timer);
      timer = window.setTimeout(open, ms);
    }

    function failed(delayMs) {
      halt();
      failures += 1;
      setMode("polling");
      var backoff = Math.min(MAX_DELAY_MS, retryMs * Math.pow(2, failures - 1));
      later(Math.min(MAX_DELAY_MS, delayMs || backoff) + Math.random() * 1000);
    }

    function watchQuiet() {
      window.clearTimeout(quiet);
      quiet = window.setTimeout(function () { failed(); }, QUIET_LIMIT_MS);
    }

    function parse(block) {
      var event = "message", id = null, data = [];
      block.split("\n").forEach(function (line) {
        if (!line || line.charAt(0) === ":") return;
        var colon = line.indexOf(":");
        var name = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") event = value;
        else if (name === "id") id = value;
        else if (name === "data") data.push(value);
        else if (name === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
      });
      if (event === "stats" && id && data.length) {
        try { deliver(id, JSON.parse(data.join("\n"))); } catch (e) { /* not JSON: ignored */ }
      }
    }

    function read(reader, mine) {
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (mine.signal.aborted) return;
          watchQuiet();
          if (chunk.done) {  // the server ended it (its lifetime, a restart): come back as told
            window.clearTimeout(quiet);
            mine.abort();
            later(retryMs);
            return;
          }
          buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }

    function open() {
      halt();
      var token = options.token();
      if (!token || !leading) return;
      var mine = controller = new AbortController();  // this attempt; a later one replaces it
      fetch(options.url(lastId), {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        cache: "no-store", signal: mine.signal
      }).then(function (response) {
        if (mine.signal.aborted) return;
        if (response.status === 200 && response.body) {
          failures = 0;
          setMode("live");
          watchQuiet();
          return read(response.body.getReader(), mine);
        }
        if (response.status === 400 || response.status === 401 || response.status === 403) {
          halt();
          setMode("polling");
          options.onRefused(response.status);
          return;
        }
        var after = Number(response.headers.get("Retry-After"));
        failed(after > 0 ? after * 1000 : 0);
      }).catch(function () {
        if (!mine.signal.aborted) failed();  // refused connection, or the stream cut
      });
    }

    function lead(wanted) {
      if (!locks) {
        leading = true;
        open();
        return;
      }
      locks.request(CHANNEL + "." + wanted, function () {
        if (wanted !== key) return null;  // this tab wants another stream now
        leading = true;
        open();
        return new Promise(function (resolve) { release = resolve; });
      });
    }

    function restart() {
      var token = options.token();
      var wanted = token ? hash(token + "|" + options.url(null)) : null;
      if (wanted === key) return;
      halt();
      leading = false;
      if (release) release();
      release = null;
      key = wanted;
      failures = 0;
      setMode("polling");
      if (!key) return;
      lead(key);
      if (channel) channel.postMessage({ key: key, type: "hello" });
    }

    if (channel) {
      channel.onmessage = function (message) {
        var said = message.data || {};
        if (said.key !== key) return;
        if (leading) {
          if (said.type === "hello") setMode(mode);  // tell the new tab whether it is live
          return;
        }
        if (said.type === "stats") {
          lastId = said.id;
          options.onEvent(said.id, said.data);
        } else if (said.type === "mode") {
          if (said.mode !== mode) { mode = said.mode; options.onMode(said.mode); }
        }
      };
    }

    return {
      restart: restart,
      stop: function () { key = "stopped"; halt(); leading = false; if (release) release(); release = null; }
    };
  }

  window.AlignWorkLive = { connect: connect };
}());
