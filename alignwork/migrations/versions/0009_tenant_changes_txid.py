"""tenant_changes.txid: the transaction that last wrote each row, so the listener reads only
what committed since its last look

Revision ID: 0009
Revises: 0008

PostgreSQL stamps it with a BEFORE row trigger (``alignwork.models.change_sql.create_stamp``,
which ``create_all`` also runs), and its default is the writing transaction too, so rows
written by plain SQL are stamped. Existing rows get this migration's transaction: they are
older than any listener's next snapshot. SQLite leaves it at 0 (its cursor is the version).
"""
from alembic import op
import sqlalchemy as sa

from alignwork.models import change_sql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(change_sql.TABLE, sa.Column('txid', sa.BigInteger(), server_default='0', nullable=False))
    op.create_index(op.f('ix_tenant_changes_txid'), change_sql.TABLE, ['txid'])
    bind = op.get_bind()
    for statement in change_sql.create_stamp(bind.dialect.name):
        bind.exec_driver_sql(statement)


def downgrade():
    bind = op.get_bind()
    for statement in change_sql.drop_stamp(bind.dialect.name):
        bind.exec_driver_sql(statement)
    op.drop_index(op.f('ix_tenant_changes_txid'), table_name=change_sql.TABLE)
    # Not a batch rebuild: on SQLite that would break the triggers naming the table.
    bind.exec_driver_sql(f'ALTER TABLE {change_sql.TABLE} DROP COLUMN txid')
