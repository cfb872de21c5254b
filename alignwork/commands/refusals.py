"""What ends a ``flask`` command when the settings cannot work: one line naming the setting.

The ``flask`` command builds the app through ``create_app``, and Flask shows the traceback of
whatever the factory raises, even above ``flask --help``: a misspelt ``CACHE_TYPE`` greeted a
newcomer's ``make run`` with 39 lines. Python callers, the tests and the server want the
``ConfigurationError`` itself, so the one line applies only while the ``flask`` command is
loading the app (``_loading_context``). Two kinds of refusal end a command here:

- a setting the app refuses (``ConfigurationError``), found while the app is built. Flask
  lists the app's commands (for ``--help``) inside ``except Exception`` and prints the
  traceback of anything raised there, so the line is printed and the process exits with
  ``SystemExit``, which Flask lets through;
- a database the settings name that cannot be reached, or does not exist. Found only when a
  command connects, and a refusal only for the commands: the server starts without its
  database and answers from its cache. It is caught as the exception that ends the command,
  by a resource of the command's context (click hands resources that exception), so a command
  that handles a failed connection itself (a retry) is left to do so.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, has_app_context
from flask.cli import ScriptInfo
from sqlalchemy.exc import OperationalError

from ..config import ConfigurationError, shown_url


def _loading_context() -> click.Context | None:
    """The ``flask`` command's outermost context while it loads the app; None when anyone else
    builds one: Python code, the tests, gunicorn, or a second app made inside a command (an
    app context is active there, ``flask shell`` for one)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.find_object(ScriptInfo) is None or has_app_context():
        return None
    return ctx.find_root()


@contextmanager
def refused_settings_end_the_command() -> Iterator[None]:
    """Around the factory's configuration: a refused setting ends the ``flask`` command."""
    try:
        yield
    except ConfigurationError as exc:
        if _loading_context() is None:
            raise
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None


def init_app(app: Flask, database_setting: str) -> None:
    ctx = _loading_context()
    if ctx is not None:
        ctx.with_resource(_unreachable_database_ends_the_command(app.config["SQLALCHEMY_DATABASE_URI"],
                                                                 database_setting))


@contextmanager
def _unreachable_database_ends_the_command(url: str, setting: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if exc.statement is not None:  # the connection was made: a statement failed
            raise
        raise click.ClickException(
            f"{setting}: cannot connect to {shown_url(url)}: {_cause(exc)}") from exc


def _cause(exc: OperationalError) -> str:
    """The driver's reason without its preamble: 'connection refused', 'database "x" does not
    exist' (psycopg says 'connection failed: connection to server at ..., port 1 failed: ...')."""
    lines = str(exc.orig).strip().splitlines()
    reason = lines[0].rsplit(" failed: ", 1)[-1] if lines else type(exc.orig).__name__
    reason = reason.removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]
