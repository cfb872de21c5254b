"""Deterministic demo data, loaded in bulk (``flask seed`` is its command)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import column, func, insert, select, table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from ..extensions import db
from ..models import COUNTED_STATUSES, Appointment, AppointmentCount, Patient, Tenant, rollup_sql
from ..models.appointment_count import bucket_of
from ..periods import parse_timezone
from .tenants import create_tenant

BATCH = 20_000
DAYS_BEFORE, DAYS_AFTER = 60, 90
STATUS_WEIGHTS = {"confirmed": 50, "pending": 35, "cancelled": 15}


def appointment_rows(
    tenant_id: str, patient_ids: list[int], count: int, tz_name: str, anchor: date, seed: int
) -> Iterator[dict]:
    """``count`` appointments from 60 days before ``anchor`` to 90 after, in local working
    hours (07:00-18:45, quarter hours). The same arguments always give the same rows."""
    rng = random.Random(seed)
    tz = parse_timezone(tz_name)
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    now = datetime.now(timezone.utc)
    for _ in range(count):
        day = anchor + timedelta(days=rng.randrange(-DAYS_BEFORE, DAYS_AFTER))
        local = datetime.combine(day, time(rng.randrange(7, 19), 15 * rng.randrange(4)), tzinfo=tz)
        yield {
            "tenant_id": tenant_id,
            "patient_id": rng.choice(patient_ids),
            "starts_at": local.astimezone(timezone.utc),
            "duration_min": rng.choice((15, 30, 30, 45, 60)),
            "status": rng.choices(statuses, weights)[0],
            "created_at": now,
            "updated_at": now,
        }


def seed_tenant(
    tenant_id: str,
    appointments: int,
    seed: int = 1,
    if_empty: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    name: str | None = None,
) -> int:
    """Create the tenant if needed (named ``name``, by default its id; an existing tenant keeps
    its name) and bulk-insert patients and appointments; returns how many appointments were
    inserted (0 when ``if_empty`` and the tenant has some)."""
    tenant = db.session.get(Tenant, tenant_id) or create_tenant(tenant_id, name)
    if if_empty and db.session.scalar(
        select(func.count()).select_from(Appointment).where(Appointment.tenant_id == tenant_id)
    ):
        return 0
    rng = random.Random(seed)
    n_patients = max(5, min(appointments // 50, 20_000))
    db.session.execute(
        insert(Patient),
        [{"tenant_id": tenant_id, "name": f"Patient {rng.randrange(10**6):06d}"} for _ in range(n_patients)],
    )
    patient_ids = list(db.session.scalars(select(Patient.id).where(Patient.tenant_id == tenant_id)))
    anchor = datetime.now(parse_timezone(tenant.timezone)).date()
    rows = appointment_rows(tenant_id, patient_ids, appointments, tenant.timezone, anchor, seed)
    _insert_appointments(db.session.connection(), tenant_id, rows, progress)
    db.session.commit()
    return appointments


def _insert_appointments(connection: Connection, tenant_id: str, rows: Iterator[dict],
                         progress: Callable[[int], None]) -> None:
    """Bulk-insert in the caller's transaction so that the rollup is adjusted once per bucket,
    not once per row (a rollup upsert per row costs about half the seeding time on SQLite
    and rewrites each bucket's row hundreds of times on PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        _insert_through_staging(connection, tenant_id, rows, progress)
    else:
        _insert_without_row_triggers(connection, rows, progress)


def _insert_through_staging(connection: Connection, tenant_id: str, rows: Iterator[dict],
                            progress: Callable[[int], None]) -> None:
    """PostgreSQL: the rows are copied (``COPY``, the fastest way in) to a temporary table,
    then moved into ``appointments`` with one INSERT ... SELECT, whose statement-level trigger
    adds each bucket once."""
    names = ", ".join(_SEEDED)
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE seed_appointments ON COMMIT DROP AS "
                               f"SELECT {names} FROM appointments WITH NO DATA")
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY seed_appointments ({names}) FROM STDIN") as copy:
            done = 0
            for row in rows:
                copy.write_row([row[name] for name in _SEEDED])
                done += 1
                if done == BATCH:
                    progress(done)
                    done = 0
            progress(done)
    finally:
        cursor.close()
    # Through the session, as a statement that names its tenant, so that the commit invalidates
    # that tenant's cached stats (services/changes/session_hooks.py).
    staging = table("seed_appointments", *(column(name) for name in _SEEDED))
    db.session.execute(insert(Appointment.__table__).from_select(
        list(_SEEDED), select(*staging.c).where(staging.c.tenant_id == tenant_id)))


def _insert_without_row_triggers(connection: Connection, rows: Iterator[dict],
                                 progress: Callable[[int], None]) -> None:
    """SQLite, which has row triggers only: the triggers are dropped, the rows inserted and
    counted per bucket here (``bucket_of``, which the tests hold equal to the triggers'
    bucketing; counting in SQL afterwards would cost another pass over the rows), the counts
    added to the rollup and the triggers recreated, all in this transaction. It already holds
    the database's write lock (the patients were inserted first), so no other writer can run
    while the triggers are absent, and a rollback restores them."""
    if not connection.connection.dbapi_connection.in_transaction:
        raise RuntimeError("seeding SQLite must run inside the write transaction")
    for statement in rollup_sql.drop_triggers("sqlite"):
        connection.exec_driver_sql(statement)
    counts: Counter = Counter()

    def counted(rows: Iterator[dict]) -> Iterator[dict]:
        for row in rows:
            if row["status"] in COUNTED_STATUSES:
                counts[(row["tenant_id"], bucket_of(row["starts_at"]), row["status"])] += 1
            yield row

    _insert_batches(Appointment.__table__, counted(rows), progress)
    table = AppointmentCount.__table__
    upsert = sqlite_insert(table)
    upsert = upsert.on_conflict_do_update(index_elements=[table.c.tenant_id, table.c.bucket, table.c.status],
                                          set_={"n": table.c.n + upsert.excluded.n})
    if counts:
        connection.execute(upsert, [{"tenant_id": t, "bucket": b, "status": s, "n": n}
                                    for (t, b, s), n in counts.items()])
    for statement in rollup_sql.create_triggers("sqlite"):
        connection.exec_driver_sql(statement)


_SEEDED = ("tenant_id", "patient_id", "starts_at", "duration_min", "status", "created_at", "updated_at")


def _insert_batches(target, rows: Iterator[dict], progress: Callable[[int], None]) -> None:
    """Through the session, whose commit then invalidates the tenants the rows name."""
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            db.session.execute(insert(target), batch)
            progress(len(batch))
            batch = []
    if batch:
        db.session.execute(insert(target), batch)
        progress(len(batch))
