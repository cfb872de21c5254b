"""patients and appointments never reuse an id on SQLite (AUTOINCREMENT)

Revision ID: 0007
Revises: 0006

Without AUTOINCREMENT, SQLite gives a new row max(id) + 1, so deleting the highest id hands it
to the next row, and a client still holding the old id would edit someone else's appointment.
SQLite can add AUTOINCREMENT only by rebuilding the table (copy, drop, rename). Dropping
``appointments`` drops its rollup triggers, so they are made again from the one definition
(``alignwork.models.rollup_sql``). The counts themselves are untouched: the rows are copied as
they are. PostgreSQL's identity columns never reuse a value, so there is nothing to do there.
"""
from alembic import op

from alignwork.models import rollup_sql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_TABLES = ('patients', 'appointments')


def _rebuild(autoincrement):
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    for statement in rollup_sql.drop_triggers('sqlite'):
        bind.exec_driver_sql(statement)
    for table in _TABLES:
        with op.batch_alter_table(table, recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass
    for statement in rollup_sql.create_triggers('sqlite'):
        bind.exec_driver_sql(statement)


def upgrade():
    _rebuild(True)


def downgrade():
    _rebuild(False)
