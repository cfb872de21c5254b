"""appointment_counts: 15-minute rollup of confirmed and pending appointments, backfilled

Revision ID: 0003
Revises: 0002
"""
from collections import Counter
from datetime import timezone

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    counts = op.create_table(
        'appointment_counts',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_appointment_counts_tenant_id_tenants')),
        sa.PrimaryKeyConstraint('tenant_id', 'bucket', 'status', name=op.f('pk_appointment_counts')),
    )
    # Backfill from existing appointments, self-contained (no application imports).
    bind = op.get_bind()
    appointments = sa.table('appointments', sa.column('tenant_id'), sa.column('starts_at', sa.DateTime(timezone=True)),
                            sa.column('status'))
    totals = Counter()
    rows = bind.execute(sa.select(appointments.c.tenant_id, appointments.c.starts_at, appointments.c.status)
                        .where(appointments.c.status.in_(('confirmed', 'pending'))))
    for tenant_id, starts_at, status in rows:
        if starts_at.tzinfo is not None:
            starts_at = starts_at.astimezone(timezone.utc).replace(tzinfo=None)
        bucket = starts_at.replace(minute=starts_at.minute - starts_at.minute % 15, second=0, microsecond=0)
        if bind.dialect.name == 'postgresql':
            bucket = bucket.replace(tzinfo=timezone.utc)
        totals[(tenant_id, bucket, status)] += 1
    if totals:
        op.bulk_insert(counts, [{'tenant_id': t, 'bucket': b, 'status': s, 'n': n} for (t, b, s), n in totals.items()])


def downgrade():
    op.drop_table('appointment_counts')
