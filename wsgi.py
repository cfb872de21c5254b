"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Settings the app refuses end the process in one line. The exit status is gunicorn's "worker
failed to boot", on which gunicorn stops rather than fork the worker again, forever (any other
status, ``sys.exit``'s 1 included, is a worker that died and is replaced). gunicorn.conf.py
refuses before any worker is forked; this is for what it cannot see: gunicorn started without
it, or the settings edited after it looked and a worker replaced since.
"""

import sys

from alignwork import create_app
from alignwork.config import ConfigurationError

# gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR, without importing gunicorn: any WSGI server may
# import this module.
WORKER_BOOT_ERROR = 3

try:
    app = create_app()
except ConfigurationError as exc:
    print(f"AlignWork refuses to start: {exc}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)
