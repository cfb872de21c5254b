"""tenant_changes: the database's record of every change to a tenant's stats or record

Revision ID: 0006
Revises: 0005

Kept by triggers on appointment_counts and tenants (``alignwork.models.change_sql``, the one
definition ``create_all`` also uses). Every existing tenant gets a first version, and the
epoch a random token.
"""
from alembic import op
import sqlalchemy as sa

from alignwork.models import change_sql, tenant_change

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        change_sql.TABLE,
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_tenant_changes')),
    )
    op.create_index(op.f('ix_tenant_changes_version'), change_sql.TABLE, ['version'])
    op.create_table(
        change_sql.EPOCH_TABLE,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('epoch', sa.String(length=32), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_change_epoch_change_epoch_one_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_change_epoch')),
    )
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == 'postgresql':
        # No tenant may change between its first version and the triggers taking over.
        op.execute('LOCK TABLE tenants, appointment_counts IN SHARE ROW EXCLUSIVE MODE')
    for statement in change_sql.create_triggers(dialect):
        bind.exec_driver_sql(statement)
    bind.exec_driver_sql(change_sql.record_every_tenant(dialect))
    bind.execute(sa.text(tenant_change.epoch_row_sql()), {"epoch": tenant_change.new_epoch()})


def downgrade():
    bind = op.get_bind()
    for statement in change_sql.drop_triggers(bind.dialect.name):
        bind.exec_driver_sql(statement)
    if bind.dialect.name == 'postgresql':
        op.execute(f'DROP SEQUENCE IF EXISTS {change_sql.SEQUENCE}')
    op.drop_table(change_sql.EPOCH_TABLE)
    op.drop_index(op.f('ix_tenant_changes_version'), table_name=change_sql.TABLE)
    op.drop_table(change_sql.TABLE)
