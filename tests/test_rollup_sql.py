"""The triggers keep the rollup exact whoever writes: the API, the services, stale ORM objects,
bulk ORM statements and raw SQL, on both databases, across period boundaries."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError

from alignwork.extensions import cache, db
from alignwork.models import COUNTED_STATUSES, Appointment, AppointmentCount
from alignwork.models.appointment_count import bucket_of
from alignwork.periods import parse_timezone
from alignwork.services import appointments as service
from alignwork.services.rollup import check_counts
from tests.conftest import Builder, counted_appointments, rollup_counts
from tests.period_oracle import periods_at

NOW = datetime(2026, 5, 13, 15, 0, tzinfo=timezone.utc)  # a Wednesday (Thursday in Kiritimati)
ZONES = ["America/Recife", "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati", "Europe/London"]
STATUSES = ["pending", "confirmed", "cancelled"]
SQLITE_BUCKET = re.compile(r"^\d{4}-\d\d-\d\d \d\d:(00|15|30|45):00\.000000$")


def _boundaries(zone: str) -> list[datetime]:
    """Every period boundary around NOW in ``zone``: local midnights, Sunday, month ends."""
    periods = periods_at(parse_timezone(zone), NOW)
    return sorted({p.start for p in periods.values()} | {p.end for p in periods.values()})


# An instant near a boundary (just before, on, just after, or within an hour or two), or anywhere.
near_boundary = st.tuples(st.integers(0, 7), st.sampled_from([-1, 0, 1]),
                          st.integers(-7200, 7200), st.sampled_from([0, 1, 999_999, 500_000]))
anywhere = st.datetimes(min_value=datetime(2026, 4, 1), max_value=datetime(2026, 7, 15),
                        timezones=st.just(timezone.utc))
instants = st.one_of(near_boundary, anywhere)

WRITERS = ["api", "service", "expired_orm", "bulk_orm", "raw_sql"]
steps = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(WRITERS), instants, st.sampled_from(STATUSES)),
    st.tuples(st.just("move"), st.sampled_from(WRITERS), st.integers(0, 50), instants),
    st.tuples(st.just("status"), st.sampled_from(WRITERS), st.integers(0, 50), st.sampled_from(STATUSES)),
    st.tuples(st.just("delete"), st.sampled_from(WRITERS), st.integers(0, 50)),
    st.tuples(st.just("bulk_cancel_before"), st.just("bulk_orm"), instants),
    st.tuples(st.just("retenant"), st.just("raw_sql"), st.integers(0, 50)),
), min_size=1, max_size=15)


def _instant(value, zone: str) -> datetime:
    if isinstance(value, datetime):
        return value
    index, sign, seconds, micro = value
    boundaries = _boundaries(zone)
    anchor = boundaries[index % len(boundaries)]
    return anchor + sign * timedelta(seconds=abs(seconds), microseconds=micro)


def _raw_text(at: datetime, variant: int) -> str:
    """``at`` as a hand-written row might hold it: without microseconds, with a T, with an offset."""
    at_utc = at.astimezone(timezone.utc)
    if variant == 0:  # what a person types: no microseconds
        return at_utc.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")
    if variant == 1:  # ISO with T and Z
        return at_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    local = at_utc.astimezone(timezone(timedelta(hours=-3)))  # an offset, millisecond precision
    return local.isoformat(sep=" ", timespec="milliseconds")


class History:
    """Applies one step through the writer it names, in ``app``; writes that the API or the
    services refuse (a 409, say) are simply not made, as for a real caller."""

    def __init__(self, app, client, database: str, tenant: str, other: str, zone: str):
        self.app, self.client, self.database = app, client, database
        self.tenant, self.other, self.zone = tenant, other, zone
        build = Builder(app)
        self.patient = build.patient(tenant)
        self.other_patient = build.patient(other)
        self.raw_variant = 0

    def ids(self) -> list[int]:
        return list(db.session.scalars(select(Appointment.id).where(Appointment.tenant_id == self.tenant)
                                       .order_by(Appointment.id)))

    def apply(self, step) -> None:
        kind, writer = step[0], step[1]
        ids = self.ids()
        if kind == "create":
            self.create(writer, _instant(step[2], self.zone), step[3])
        elif kind == "bulk_cancel_before":
            db.session.execute(update(Appointment).where(
                Appointment.tenant_id == self.tenant, Appointment.starts_at < _instant(step[2], self.zone))
                .values(status="cancelled", version=Appointment.version + 1))
            db.session.commit()
        elif not ids:
            return
        elif kind == "move":
            self.change(writer, ids[step[2] % len(ids)], starts_at=_instant(step[3], self.zone))
        elif kind == "status":
            self.change(writer, ids[step[2] % len(ids)], status=step[3])
        elif kind == "delete":
            self.remove(writer, ids[step[2] % len(ids)])
        elif kind == "retenant":
            db.session.execute(text("UPDATE appointments SET tenant_id = :t, patient_id = :p WHERE id = :id"),
                               {"t": self.other, "p": self.other_patient, "id": ids[step[2] % len(ids)]})
            db.session.commit()

    def _raw_at(self, at: datetime):
        self.raw_variant += 1
        return _raw_text(at, self.raw_variant % 3)

    def create(self, writer: str, at: datetime, status: str) -> None:
        if writer == "api":
            response = self.client.post("/api/v1/appointments", json={
                "tenantId": self.tenant, "patientId": self.patient,
                "startsAt": at.isoformat(), "durationMin": 30, "status": status})
            assert response.status_code == 201, response.get_json()
        elif writer == "raw_sql":
            cast = "CAST(:at AS timestamptz)" if self.database == "postgresql" else ":at"
            db.session.execute(text(
                "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, "
                f"created_at, updated_at) VALUES (:t, :p, {cast}, 30, :s, {cast}, {cast})"),
                {"t": self.tenant, "p": self.patient, "at": self._raw_at(at), "s": status})
            db.session.commit()
        elif writer == "bulk_orm":
            db.session.execute(Appointment.__table__.insert(), [{
                "tenant_id": self.tenant, "patient_id": self.patient, "starts_at": at, "duration_min": 30,
                "status": status, "created_at": at, "updated_at": at}])
            db.session.commit()
        else:
            service.create_appointment(self.tenant, self.patient, at, 30, status)

    def change(self, writer: str, appointment_id: int, **changes) -> None:
        if writer == "api":
            body = {"status": changes["status"]} if "status" in changes else \
                {"startsAt": changes["starts_at"].isoformat()}
            response = self.client.patch(f"/api/v1/appointments/{appointment_id}?tenantId={self.tenant}",
                                         json=body)
            assert response.status_code == 200, response.get_json()
        elif writer == "service":
            service.update_appointment(self.tenant, appointment_id, changes)
        elif writer == "expired_orm":
            appointment = db.session.get(Appointment, appointment_id)
            db.session.commit()  # expires it: the old values are not loaded again below
            for name, value in changes.items():
                setattr(appointment, name, value)
            db.session.commit()
        elif writer == "bulk_orm":
            db.session.execute(update(Appointment).where(Appointment.id == appointment_id)
                               .values(version=Appointment.version + 1, **changes))
            db.session.commit()
        else:
            if "starts_at" in changes:
                cast = "CAST(:v AS timestamptz)" if self.database == "postgresql" else ":v"
                sql, value = f"UPDATE appointments SET starts_at = {cast} WHERE id = :id", \
                    self._raw_at(changes["starts_at"])
            else:
                sql, value = "UPDATE appointments SET status = :v WHERE id = :id", changes["status"]
            db.session.execute(text(sql), {"v": value, "id": appointment_id})
            db.session.commit()

    def remove(self, writer: str, appointment_id: int) -> None:
        if writer == "api":
            response = self.client.delete(f"/api/v1/appointments/{appointment_id}?tenantId={self.tenant}")
            assert response.status_code == 204
        elif writer == "service":
            service.delete_appointment(self.tenant, appointment_id)
        elif writer == "expired_orm":
            appointment = db.session.get(Appointment, appointment_id)
            db.session.commit()
            db.session.delete(appointment)
            db.session.commit()
        elif writer == "bulk_orm":
            db.session.execute(delete(Appointment).where(Appointment.id == appointment_id))
            db.session.commit()
        else:
            db.session.execute(text("DELETE FROM appointments WHERE id = :id"), {"id": appointment_id})
            db.session.commit()


def _expected_stats(tenant: str, zone: str) -> dict:
    periods = periods_at(parse_timezone(zone), NOW)
    rows = db.session.scalars(select(Appointment).where(Appointment.tenant_id == tenant)).all()
    return {name: {status: sum(1 for a in rows if a.status == status and p.start <= a.starts_at < p.end)
                   for status in COUNTED_STATUSES}
            for name, p in periods.items()}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=steps, zone=st.sampled_from(ZONES))
def test_rollup_and_stats_follow_every_writer(app, database, history, zone):
    tenant, other = "t-" + uuid.uuid4().hex[:12], "o-" + uuid.uuid4().hex[:12]
    build = Builder(app)
    build.tenant(tenant, timezone=zone)
    build.tenant(other, timezone=zone)
    client = app.test_client()
    with time_machine.travel(NOW, tick=False), app.app_context():
        writes = History(app, client, database, tenant, other, zone)
        for step in history:
            writes.apply(step)
        db.session.expire_all()
        assert rollup_counts({tenant, other}) == counted_appointments({tenant, other})
        if database == "sqlite":  # the key is text there: the triggers write SQLAlchemy's format
            buckets = db.session.scalars(text("SELECT DISTINCT bucket FROM appointment_counts")).all()
            assert all(SQLITE_BUCKET.match(b) for b in buckets), buckets
        assert check_counts(tenant).exact and check_counts(other).exact
        cache.clear()
        response = client.get(f"/api/v1/appointments/mega-stats?tenantId={tenant}&tz={zone}")
        assert response.status_code == 200 and response.headers["X-Cache"] == "MISS"
        assert response.get_json() == _expected_stats(tenant, zone)


@pytest.mark.parametrize("stored,bucket", [
    ("2026-11-27 10:07:00.000000", "2026-11-27 10:00:00.000000"),
    ("2026-11-27 10:14:59", "2026-11-27 10:00:00.000000"),
    ("2026-11-27 10:14:59.999999", "2026-11-27 10:00:00.000000"),  # SQLite may round ms: cut first
    ("2026-11-27 10:14:59.9999999", "2026-11-27 10:00:00.000000"),
    ("2026-11-27 10:15", "2026-11-27 10:15:00.000000"),
    ("2026-11-27T10:29:30Z", "2026-11-27 10:15:00.000000"),
    ("2026-11-27 23:59:59.5-03:00", "2026-11-28 02:45:00.000000"),
    ("2026-11-27", "2026-11-27 00:00:00.000000"),
])
def test_sqlite_buckets_every_stored_form_as_sqlalchemy_reads_it(make_app, stored, bucket):
    app = make_app(database="sqlite")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    with app.app_context():
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
            "updated_at) VALUES ('acme', :p, :at, 30, 'confirmed', :at, :at)"), {"p": patient, "at": stored})
        db.session.commit()
        assert db.session.scalars(text("SELECT bucket FROM appointment_counts")).all() == [bucket]
        [appointment] = db.session.scalars(select(Appointment)).all()
        assert bucket_of(appointment.starts_at) == db.session.scalar(select(AppointmentCount.bucket))


@pytest.mark.parametrize("stored", ["27/11/2026 10:00", "2026-11-27 10:07:00+0300", "soon"])
def test_sqlite_refuses_a_starts_at_it_cannot_bucket(make_app, stored):
    app = make_app(database="sqlite")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    with app.app_context(), pytest.raises(IntegrityError, match="not an ISO 8601 timestamp"):
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
            "updated_at) VALUES ('acme', :p, :at, 30, 'cancelled', :at, :at)"), {"p": patient, "at": stored})


def test_postgres_buckets_in_utc_whatever_the_session_zone(make_app):
    app = make_app(database="postgresql")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    with app.app_context():
        db.session.execute(text("SET TIME ZONE 'Asia/Kathmandu'"))  # +05:45
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
            "updated_at) VALUES ('acme', :p, '2026-11-27 10:07:00', 30, 'pending', now(), now())"),
            {"p": patient})
        db.session.commit()
        db.session.execute(text("SET TIME ZONE 'UTC'"))
        assert db.session.scalar(select(AppointmentCount.bucket)) == datetime(2026, 11, 27, 4, 15, tzinfo=timezone.utc)


def test_truncating_the_appointments_empties_the_rollup(make_app):
    app = make_app(database="postgresql")
    build = Builder(app)
    build.tenant("acme")
    build.appointments("acme", [(datetime(2026, 5, 13, 12, tzinfo=timezone.utc), "confirmed")])
    with app.app_context():
        db.session.execute(text("TRUNCATE appointments"))
        db.session.commit()
        assert db.session.scalars(select(AppointmentCount)).all() == []
