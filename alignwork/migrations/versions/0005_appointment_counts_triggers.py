"""appointment_counts kept by triggers on appointments (not ORM events), rebuilt once

Revision ID: 0005
Revises: 0004

The trigger SQL is imported from the application (``alignwork.models.rollup_sql``), the one
definition ``create_all`` also uses. A later change to it comes with a migration of its own
that drops and recreates the triggers.
"""
from alembic import op

from alignwork.models import rollup_sql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == 'postgresql':
        # No write may commit between the rebuild and the triggers taking over.
        op.execute('LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE')
    for statement in rollup_sql.create_triggers(dialect):
        bind.exec_driver_sql(statement)
    for statement in rollup_sql.rebuild(dialect):
        bind.execute(statement)


def downgrade():
    bind = op.get_bind()
    for statement in rollup_sql.drop_triggers(bind.dialect.name):
        bind.exec_driver_sql(statement)
