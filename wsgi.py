"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from alignwork import create_app

app = create_app()
