"""gunicorn settings, read from the environment; command-line flags (-w, -b) still win.

    gunicorn -c gunicorn.conf.py wsgi:app
"""

import multiprocessing
import os
import shutil
import sys
import tempfile

# prometheus_client's multiprocess mode: every worker writes its metrics here and /metrics and
# cache-metrics read them all. Set before anything imports the app (below, then every worker).
# A folder made here is deleted when the server exits (on_exit); one the operator gave is left
# alone. The folder made is remembered in the environment, because gunicorn reads this file
# again on a reload (HUP).
_MADE_HERE = "_ALIGNWORK_GUNICORN_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_MADE_HERE] = tempfile.mkdtemp(prefix="alignwork-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _cache_is_shared():
    """Whether the app's configured cache is seen by every worker (None: the config is broken,
    and each worker will say so when it refuses to start)."""
    from alignwork import create_app
    from alignwork.cache_backends import is_shared
    from alignwork.config import ConfigurationError

    try:
        return is_shared(create_app().config["CACHE_TYPE"])
    except (ConfigurationError, RuntimeError):
        return None


_shared_cache = _cache_is_shared()

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# A per-process cache cannot be shared by workers: then one worker, with threads.
_default_workers = min(4, multiprocessing.cpu_count() * 2 + 1) if _shared_cache is not False else 1
workers = int(os.environ.get("GUNICORN_WORKERS", _default_workers))
threads = int(os.environ.get("GUNICORN_THREADS", "1" if _shared_cache is not False else "4"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread" if threads > 1 else "sync")
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
    _check_per_worker_cache(server)


def _check_per_worker_cache(server):
    """Several workers with a per-process cache serve each other's stale numbers after a write
    (each sees only its own invalidations): refused in production, a loud warning otherwise."""
    if server.cfg.workers < 2 or _shared_cache is not False:
        return
    advice = (f"CACHE_TYPE is a per-process cache with {server.cfg.workers} workers: after a write, "
              "the other workers serve stale stats until their entries expire. Set "
              "ALIGNWORK_CACHE_TYPE=RedisCache (and ALIGNWORK_CACHE_REDIS_URL), or run one worker "
              "with threads (GUNICORN_WORKERS=1 GUNICORN_THREADS=4).")
    if os.environ.get("ALIGNWORK_ENV") == "production":
        sys.exit("AlignWork refuses to start: " + advice)
    server.log.warning(advice)


def post_worker_init(worker):
    """Each worker runs the change listener in a thread (unless CHANGE_LISTENER is off): it
    brings every committed change to the cache, and the next worker forked takes over from one
    that died. gunicorn has no periodic hook in the master and reaps children it did not fork
    as workers, so a thread in the workers is the supervised place for it."""
    from alignwork.services import listener

    if hasattr(worker.wsgi, "config"):  # the app (a benchmark may serve something else)
        listener.start(worker.wsgi)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get(_MADE_HERE) == _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
