"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import sys

from alignwork import create_app
from alignwork.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:
    sys.exit(f"AlignWork refuses to start: {exc}")
