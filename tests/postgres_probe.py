"""Whether a PostgreSQL server answers: the tests skip (or fail) without one, the benchmark leaves
its PostgreSQL rows out.

It imports nothing from pytest or the test fixtures, so ``bench`` (``python -m bench``) uses it too.
"""

from __future__ import annotations

import sqlalchemy as sa


def postgres_unreachable(url: str, connect_timeout: int) -> str | None:
    """Why the server at ``url`` cannot be used (the error's class name), or None once it has
    answered a ``SELECT 1``."""
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": connect_timeout})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return type(exc).__name__
    return None
