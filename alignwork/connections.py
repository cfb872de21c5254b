"""How every database connection the app opens is set up.

SQLite leaves foreign keys unenforced unless each connection asks for them, and then an
appointment could name a missing patient or another tenant's patient (the composite key
``(tenant_id, patient_id)`` -> ``patients``). Turning them on for every pooled connection makes
SQLite refuse what PostgreSQL refuses. Migrations turn them off for their own run (see
``migrations/env.py``).
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


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _enforce_foreign_keys)
