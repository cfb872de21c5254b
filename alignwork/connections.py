"""How every database connection the app opens is set up.

SQLite leaves foreign keys unenforced unless each connection asks for them, and then an
appointment could name a missing patient or another tenant's patient (the composite key
``(tenant_id, patient_id)`` -> ``patients``). Turning them on for every pooled connection makes
SQLite refuse what PostgreSQL refuses. Migrations turn them off for their own run (see
``migrations/env.py``).

On PostgreSQL, a transaction left idle is ended by the server after
``DATABASE_IDLE_TRANSACTION_SECONDS`` (0: never; a pooler such as PgBouncer that refuses the
``options`` startup parameter needs 0, and the bound set on the server instead). A COMMIT lost on its way (the client gone, the server never
told) would otherwise leave its transaction open, holding its row locks and its
``Idempotency-Key``, until the server noticed the dead client (hours, with default
keepalives); a retry with the key is answered 409 until then. No request of the app's holds a
transaction that long (gunicorn's timeout is 30 s).
"""

from __future__ import annotations

import sqlite3

from flask import Flask
from sqlalchemy import event

from .extensions import db


def _enforce_foreign_keys(dbapi_connection, connection_record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _bounding_idle_transactions(seconds: int):
    def bound(dialect, connection_record, cargs, cparams) -> None:
        """A startup option of the connection, not a ``SET`` after it: no extra round trip, and
        no statement of its own on the wire."""
        setting = f"-c idle_in_transaction_session_timeout={seconds * 1000}"
        cparams["options"] = f"{cparams['options']} {setting}" if cparams.get("options") else setting

    return bound


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _enforce_foreign_keys)
            elif engine.dialect.name == "postgresql" and app.config["DATABASE_IDLE_TRANSACTION_SECONDS"]:
                event.listen(engine, "do_connect",
                             _bounding_idle_transactions(app.config["DATABASE_IDLE_TRANSACTION_SECONDS"]))
