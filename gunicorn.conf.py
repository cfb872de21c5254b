"""gunicorn settings, read from the environment; command-line flags (-w, -b) still win.

    gunicorn -c gunicorn.conf.py wsgi:app
"""

import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(4, multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
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

# prometheus_client's multiprocess mode: every worker writes its metrics here and /metrics and
# cache-metrics read them all. Set before any worker imports the app. A folder made here is
# deleted when the server exits (on_exit); one the operator gave is left alone. The folder made
# is remembered in the environment, because gunicorn reads this file again on a reload (HUP).
_MADE_HERE = "_ALIGNWORK_GUNICORN_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_MADE_HERE] = tempfile.mkdtemp(prefix="alignwork-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    # Counters start from zero with each server, not from a previous run's files.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    _warn_about_per_worker_cache(server)


def _warn_about_per_worker_cache(server):
    if server.cfg.workers < 2:
        return
    from alignwork import create_app
    from alignwork.config import ConfigurationError

    try:
        cache_type = create_app().config["CACHE_TYPE"]
    except ConfigurationError:
        return  # each worker reports it, and refuses to start
    if cache_type.endswith("SimpleCache"):
        server.log.warning(
            "CACHE_TYPE is SimpleCache with %d workers: each worker has its own stats cache, and "
            "a write invalidates only the worker that handled it, so other workers may serve "
            "stats up to STATS_CACHE_TTL seconds old. For one shared cache set "
            "ALIGNWORK_CACHE_TYPE=RedisCache and ALIGNWORK_CACHE_REDIS_URL=redis://host:6379/0.",
            server.cfg.workers,
        )


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get(_MADE_HERE) == _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
