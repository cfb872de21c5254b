"""gunicorn settings, read from the environment; command-line flags (-w, -b) still win.

    gunicorn -c gunicorn.conf.py wsgi:app

The master builds the app once, here, before it listens: the cache it is configured with
decides how many workers can share the work, and settings the app refuses stop gunicorn at
once, in one line. (Left to the workers, a refusal would repeat forever: gunicorn replaces a
worker that exits.) gunicorn reads this file again on a reload (HUP); see ``on_reload`` for
settings refused then.
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

# prometheus_client's multiprocess mode: every worker writes its metrics here and /metrics and
# cache-metrics read them all. Set before anything imports the app (below, then every worker).
# A folder made here is deleted when the server exits (on_exit); one the operator gave is left
# alone. The folder made is remembered in the environment, because gunicorn reads this file
# again on a reload (HUP).
_MADE_HERE = "_ALIGNWORK_GUNICORN_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_MADE_HERE] = tempfile.mkdtemp(prefix="alignwork-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

# The process that read this file last: the same process reading it again is a reload. (A new
# master started by USR2 is a new process, and refuses as a first start does.)
_READ_BY = "_ALIGNWORK_GUNICORN_MASTER"
_reloading = os.environ.get(_READ_BY) == str(os.getpid())
os.environ[_READ_BY] = str(os.getpid())


def _remove_metrics_dir():
    if os.environ.get(_MADE_HERE) == _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def _refuse(reason):
    """Stop before serving, in one line."""
    _remove_metrics_dir()
    sys.exit(f"AlignWork refuses to start: {reason}")


# The app's settings are checked in a child process: the master forks the workers, and the
# gevent worker must patch the standard library (sockets, ssl, threading) before psycopg, redis
# and the app are imported. Importing them here, in the master, would hand every worker modules
# loaded before the patch. The child prints what the master needs to know, as JSON.
_CHECK = """
import json, sys, traceback
sys.path[1:1] = [sys.argv[1]]
from alignwork import create_app
from alignwork.config import ConfigurationError
from alignwork.cache.backend import is_shared
try:
    app = create_app()
except ConfigurationError as exc:
    print(json.dumps({"refusal": str(exc)}))
    sys.exit(0)
except Exception:
    print(json.dumps({"bug": traceback.format_exc()}))
    sys.exit(0)
print(json.dumps({"cache_type": app.config["CACHE_TYPE"], "shared": is_shared(app.config["CACHE_TYPE"]),
                  "streams_per_process": app.config["STREAMS_PER_PROCESS"]}))
"""


def _checked_settings():
    """What the app's settings say (cache type, whether shared, the stream cap), checked in a
    child process; ``refusal`` or ``bug`` when it refuses them or fails.

    At start only a refused setting is an answer: anything else is a bug and shows its traceback.
    On a reload anything is kept, for on_reload to log: gunicorn ends the master when this file
    raises, and on a reload that would take the serving workers with it."""
    env = {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    child = subprocess.run([sys.executable, "-c", _CHECK, os.path.dirname(os.path.abspath(__file__))],
                           capture_output=True, text=True, env=env)
    sys.stderr.write(child.stderr)  # the app's own warnings (no SECRET_KEY, NullCache, ...)
    lines = child.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1])
    except (IndexError, ValueError):
        found = {"bug": f"the settings check failed (exit {child.returncode}):\n{child.stderr}"}
    if "bug" in found and not _reloading:
        sys.exit(f"AlignWork's settings check failed:\n{found['bug']}")
    return found


_checked = _checked_settings()
_cache_type = _checked.get("cache_type")
_refusal = _checked.get("refusal") or _checked.get("bug")
if _refusal is not None and not _reloading:
    _refuse(_refusal)

# Whether the app's cache is seen by every worker (None: the settings are refused).
_shared_cache = _checked.get("shared")

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# A per-process cache cannot be shared by workers: then one worker.
_default_workers = min(4, multiprocessing.cpu_count() * 2 + 1) if _shared_cache is not False else 1
workers = int(os.environ.get("GUNICORN_WORKERS", _default_workers))
# gevent: each connection is a greenlet, so a worker holds thousands of open dashboard streams
# (and serves polls beside them). sync and gthread still work, and answer streams 503
# (dashboards then poll); GUNICORN_THREADS applies to gthread only.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Connections a gevent worker holds at once: the app's stream cap plus room for polls.
_stream_cap = int(_checked.get("streams_per_process") or 5000)
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", _stream_cap + 1000))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, workers finish the requests they hold for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
# %(p)s the worker <pid>, %(M)s the duration in ms, and the X-Cache result (HIT, MISS, BYPASS).
access_log_format = '%(h)s %(p)s "%(r)s" %(s)s %(b)s %(M)sms cache=%({x-cache}o)s'


def on_starting(server):
    # Counters start from zero with each server, not from a previous run's files.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    advice = _per_worker_cache_advice(server.cfg.workers)
    if advice and _production():
        if server.pidfile is not None:
            server.pidfile.unlink()
        _refuse(advice)
    if advice:
        server.log.warning(advice)


def on_reload(server):
    """A reload (HUP) with settings the app refuses must not stop a running server. gunicorn's
    reload forks new workers with the new settings and stops the old ones at once; the new ones
    cannot boot, and a worker that cannot boot halts gunicorn (WORKER_BOOT_ERROR, wsgi.py).
    So a refused reload forks no workers: the running ones keep serving with the settings they
    have, the master logs why, and the next HUP, once the setting is fixed, replaces them.
    Until then a worker that has to be replaced (one that crashed, or timed out) cannot boot
    either, and gunicorn stops, as it would have at start.

    (After this hook reload() forks ``cfg.workers`` new workers, stops those beyond
    ``num_workers``, then waits up to ``graceful_timeout`` for the old ones to go. They stay,
    so the master takes that long before it handles its next signal.)"""
    advice = _per_worker_cache_advice(server.cfg.workers)
    refused = _refusal or (advice if _production() else None)
    if refused is None:
        if advice:
            server.log.warning(advice)
        return
    server.log.error("AlignWork refuses the reloaded settings; the running workers keep serving with "
                     "the settings they have, and the master takes no reload (HUP) for the next %s s "
                     "(graceful_timeout; one sent meanwhile waits until then): %s",
                     server.cfg.graceful_timeout, refused)
    server.num_workers = len(server.WORKERS)
    server.cfg.set("workers", 0)


def _production():
    return os.environ.get("ALIGNWORK_ENV") == "production"


def _per_worker_cache_advice(workers):
    """Several workers with a per-process cache serve each other's stale numbers after a write
    (each sees only its own invalidations): refused in production, a loud warning otherwise."""
    if workers < 2 or _shared_cache is not False:
        return None
    kind = _cache_type.rsplit(".", 1)[-1]
    return (f"CACHE_TYPE {kind} is a per-process cache with {workers} workers: after a write, "
            "the other workers serve stale stats until their entries expire. Set "
            "ALIGNWORK_CACHE_TYPE=RedisCache (and ALIGNWORK_CACHE_REDIS_URL), or run one worker "
            "(GUNICORN_WORKERS=1; the gevent worker serves many connections at once).")


def post_worker_init(worker):
    """Each worker runs the change listener in a thread (unless CHANGE_LISTENER is off): it
    brings every committed change to the cache, and the next worker forked takes over from one
    that died. gunicorn has no periodic hook in the master and reaps children it did not fork
    as workers, so a thread in the workers is the supervised place for it."""
    from alignwork.services.changes import listener

    if "CHANGE_LISTENER" in getattr(worker.wsgi, "config", {}):  # the app, not a benchmark's bare one
        listener.start(worker.wsgi)
        _end_streams_when_stopping(worker)


def _end_streams_when_stopping(worker):
    """A worker told to stop (SIGTERM, or a HUP replacing it) stops accepting within a second
    (gevent's worker looks at its flag once a second) and waits up to graceful_timeout for its
    open requests. Its streams then end cleanly (the last chunk, a short ``retry:``) and their
    connections close instead of idling as keep-alive, so their clients reconnect to the workers
    that are still, or newly, serving."""
    import threading

    from alignwork.services.stats import stream_hub

    if not stream_hub.streams_possible():
        return

    def watch():
        while worker.alive:
            time.sleep(0.1)
        time.sleep(1.1)  # until the worker has closed its listening sockets
        worker.cfg.set("keepalive", 0)  # a connection whose response ends closes
        stream_hub.stop(worker.wsgi)

    threading.Thread(target=watch, name="stream-stopper", daemon=True).start()


def post_request(worker, req, environ, resp):
    """gevent's worker: after each request, let the other connections' greenlets run. A greenlet
    otherwise goes straight on to its connection's next request whenever the client has already
    sent it, and a busy worker then serves a few connections in turn while the others wait (a
    p99 of hundreds of milliseconds under load, measured, for a p50 of one)."""
    if _yields:
        _yields()


_yields = None
if worker_class == "gevent":
    def _yields():
        import gevent

        gevent.sleep(0)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    _remove_metrics_dir()
