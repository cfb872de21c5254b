"""PostgreSQL under concurrent writers: moves between the same two buckets in both directions,
bulk moves, creates and deletes in fresh buckets, while rebuild-counts runs. No deadlock, no
lost or doubled count."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text

from alignwork.extensions import db
from alignwork.models import Appointment
from alignwork.services import appointments as service
from alignwork.services.rollup import check_counts
from tests.conftest import Builder, counted_appointments, rollup_counts

A = datetime(2026, 5, 13, 12, 0, tzinfo=timezone.utc)
B = A + timedelta(minutes=15)
ROUNDS = 60


def test_concurrent_moves_and_rebuilds_neither_deadlock_nor_drift(make_app):
    app = make_app(database="postgresql")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    ids = build.appointments("acme", [(A if i % 2 else B, "confirmed") for i in range(36)], patient_id=patient)
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def run(work):
        def target():
            try:
                with app.app_context():
                    start.wait()
                    work()
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
            finally:
                with app.app_context():
                    db.session.remove()
        return threading.Thread(target=target)

    def mover(mine: list[int]):
        def work():
            rng = random.Random(mine[0])
            for _ in range(ROUNDS):
                appointment_id = rng.choice(mine)
                current = service.get_appointment("acme", appointment_id).starts_at
                service.update_appointment("acme", appointment_id, {"starts_at": B if current == A else A})
        return work

    def bulk_swapper():
        for _ in range(ROUNDS // 2):  # its appointments in A to B and those in B to A, one statement
            db.session.execute(text(
                "UPDATE appointments SET starts_at = CASE WHEN starts_at = :a THEN :b ELSE :a END, "
                "version = version + 1 WHERE id IN (" + ", ".join(map(str, ids[24:])) + ")"),
                {"a": A, "b": B})
            db.session.commit()

    def churn():
        rng = random.Random(7)
        for _ in range(ROUNDS):
            at = A + timedelta(minutes=15 * rng.randrange(2, 200))
            created = service.create_appointment("acme", patient, at, 30, rng.choice(["pending", "confirmed"]))
            if rng.random() < 0.5:
                service.delete_appointment("acme", created.id)

    def rebuilder():
        runner = app.test_cli_runner()
        for _ in range(10):
            result = runner.invoke(args=["stats", "rebuild-counts", "--tenant", "acme"])
            assert result.exit_code == 0, result.output
            result = runner.invoke(args=["stats", "rebuild-counts"])
            assert result.exit_code == 0, result.output

    threads = [run(mover(ids[0:8])), run(mover(ids[8:16])), run(mover(ids[16:24])),
               run(bulk_swapper), run(churn), run(rebuilder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert errors == []  # a deadlock above all
    with app.app_context():
        assert rollup_counts({"acme"}) == counted_appointments({"acme"})
        assert check_counts().exact
        assert len(db.session.scalars(select(Appointment.id)).all()) >= 36
