"""What ends a ``flask`` command when the settings cannot work: one line naming the setting.

The ``flask`` command builds the app through ``create_app``, and Flask shows the traceback of
whatever the factory raises, even above ``flask --help``: a misspelt ``CACHE_TYPE`` greeted a
newcomer's ``make run`` with 39 lines. Python callers, the tests and the server want the
``ConfigurationError`` itself, so the one line applies only while the ``flask`` command is
loading the app (``_loading_context``). Three kinds of refusal end a command here:

- a setting the app refuses (``ConfigurationError``), found while the app is built. Flask
  lists the app's commands (for ``--help``) inside ``except Exception`` and prints the
  traceback of anything raised there, so the line is printed and the process exits with
  ``SystemExit``, which Flask lets through;
- a database the settings name that cannot be reached, or does not exist. Found only when a
  command connects, and a refusal only for the commands: the server starts without its
  database and answers from its cache. It is caught as the exception that ends the command,
  by a resource of the command's context (click hands resources that exception), so a command
  that handles a failed connection itself (a retry) is left to do so;
- a database not migrated to this release (never, or by an older one): every command but
  ``flask db …`` (which migrates it) and ``--help`` stops before it runs, with the fix, instead
  of failing on its first missing table. A SQLite file that does not exist is left uncreated.
  Commands are checked where they are about to run: the app's own through ``MigratedGroup``
  and ``needs_migrated_database`` (the app is loaded before click knows which command is asked
  for, or whether it is only ``--help``), Flask's and the plugins' (``shell``, ``routes``,
  ``run``) as they load the app, which they do inside their own context.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from flask import Flask, has_app_context
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import OperationalError

from ..config import ConfigurationError, shown_url
from ..services import health

MIGRATION_GROUP = "db"  # Flask-Migrate's group: the commands that make the schema


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
    if ctx is None:
        return
    ctx.with_resource(_unreachable_database_ends_the_command(app.config["SQLALCHEMY_DATABASE_URI"],
                                                             database_setting))
    command = click.get_current_context()
    if command is not ctx and not _migrates(command):  # Flask's or a plugin's, about to run
        with app.app_context():
            refuse_unless_migrated()


def _migrates(ctx: click.Context) -> bool:
    while ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx.info_name == MIGRATION_GROUP


def refuse_unless_migrated() -> None:
    """End the command in one line if the database is not at this release's schema (or a later
    one). An unreachable database raises the driver's error, which ends the command as above."""
    check = health.check_schema()
    if not check.ready:
        raise click.ClickException(f"{check.problem} ({check.database}); run `flask db upgrade`.")


def needs_migrated_database(command: Callable) -> Callable:
    """For a command of the app's: ``refuse_unless_migrated`` before it runs (inside its app
    context: put it below ``with_appcontext``)."""

    @functools.wraps(command)
    def checked(*args, **kwargs):
        refuse_unless_migrated()
        return command(*args, **kwargs)

    return checked


class MigratedGroup(AppGroup):
    """An ``AppGroup`` whose every command needs the database migrated to this release; its
    ``--help`` still answers without it."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda command: register(needs_migrated_database(command))


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
