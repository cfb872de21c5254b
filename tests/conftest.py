"""Fixtures: apps built through the factory on SQLite or PostgreSQL, SimpleCache or Redis.

Backends are fixture parameters. PostgreSQL and Redis tests skip with a reason when the server
is unreachable, and fail instead when ALIGNWORK_REQUIRE_SERVICES=1 (as in CI).

No test reads the project's ``instance/`` folder (``make run`` writes a SECRET_KEY there): every
app gets an instance folder of its own, and so does every ``flask``/gunicorn process a test starts
(through ``ALIGNWORK_INSTANCE_PATH``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import uuid
from html.parser import HTMLParser
from datetime import datetime, timezone
from datetime import time as dt_time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import has_app_context
from flask.testing import FlaskClient
from sqlalchemy import event

from alignwork import INSTANCE_PATH_VARIABLE, create_app
from alignwork.auth import issue_token
from alignwork.extensions import db
from alignwork.models import COUNTED_STATUSES, Appointment, AppointmentCount
from alignwork.models.appointment_count import bucket_of
from alignwork.services import patients, tenants
from tests.postgres_probe import postgres_unreachable

REQUIRE_SERVICES = os.environ.get("ALIGNWORK_REQUIRE_SERVICES") == "1"
# The in-process modules whose answers depend on the date: with --cross-midnight only these run
# (CI runs them once more in Recife and in Tokyo).
DATE_SENSITIVE = ("test_appointments_api.py", "test_auth.py", "test_cache.py", "test_cache_admin.py",
                  "test_cli.py", "test_conditional_polling.py", "test_hostile_input.py",
                  "test_invalidation.py")
ARTIFACTS = Path(os.environ.get("ALIGNWORK_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
_RUN_STARTED = time.time()
PG_URL = os.environ.get(
    "ALIGNWORK_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ALIGNWORK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_addoption(parser):
    parser.addoption(
        "--cross-midnight", metavar="ZONE", default=None,
        help="run the date-sensitive modules only, each test starting at 23:59:55 local time in "
             "ZONE with the clock ticking, so that it crosses midnight while it runs (tests that "
             "need a date must pin the clock)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--cross-midnight"):
        chosen = [item for item in items if item.path.name in DATE_SENSITIVE]
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen


@pytest.fixture(autouse=True)
def _no_app_context_left():
    """Fails the test (or fixture) that leaves an app context pushed. Such a context outlives
    its test on that pytest worker: ``current_app`` then names a stale app in every later test,
    and code that reaches the cache without a context of its own silently uses that app's."""
    yield
    assert not has_app_context(), "an app context was left pushed (a `with app.app_context()` not exited)"


@pytest.fixture(autouse=True)
def _clock_before_midnight(request):
    zone = request.config.getoption("--cross-midnight")
    if not zone:
        yield
        return
    tz = ZoneInfo(zone)
    late = datetime.combine(datetime.now(tz).date(), dt_time(23, 59, 55), tzinfo=tz)
    with time_machine.travel(late, tick=True):
        yield


AFTERNOON = datetime(2026, 5, 13, 14, tzinfo=timezone.utc)
"""A Wednesday, mid-month: 11:00 in Recife, 23:00 in Tokyo, 04:00 in Kiritimati, 09:00 in
Chicago. Every zone the tests poll is at least 50 minutes from the ten minutes before its
midnight in which a shared cache also computes tomorrow's entry."""


@pytest.fixture
def afternoon():
    """The clock at AFTERNOON, ticking, for a test that counts entries, computations or HITs.

    Entries are per local date, and in the last minutes before a zone's midnight a poll on a
    shared cache computes tomorrow's entry as well; a test that ran then, or across midnight,
    would see a second key, a second computation or a MISS where it expects a HIT. time_machine
    moves this process's clock only, so a test whose server is a subprocess picks its tenant's
    zone with ``zone_far_from_midnight`` instead. Opt in with
    ``pytestmark = pytest.mark.usefixtures("afternoon")`` (before the app is made)."""
    with time_machine.travel(AFTERNOON, tick=True):
        yield


def service_missing(reason: str) -> None:
    """Skip with a visible reason, or fail when the services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ALIGNWORK_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def record_artifact(name: str) -> Path:
    """Where a test saves a file for people to look at (screenshots); listed at the end of the run."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def pytest_terminal_summary(terminalreporter):
    """The artifacts this run wrote, whichever process (test worker) wrote them."""
    saved = sorted(path for path in ARTIFACTS.rglob("*")
                   if path.is_file() and path.stat().st_mtime >= _RUN_STARTED) if ARTIFACTS.is_dir() else []
    if saved:
        terminalreporter.write_line(f"test artifacts ({len(saved)} files) in {ARTIFACTS}:")
        for path in saved:
            terminalreporter.write_line(f"  {path.relative_to(ARTIFACTS)}")


@functools.cache
def _postgres_problem() -> str | None:
    if error := postgres_unreachable(PG_URL, connect_timeout=2):
        return f"PostgreSQL not reachable at {PG_URL}: {error}"
    return None


@functools.cache
def _redis_problem() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}"
    return None


def require_postgres() -> None:
    if problem := _postgres_problem():
        service_missing(problem)


def require_redis() -> None:
    if problem := _redis_problem():
        service_missing(problem)


@contextlib.contextmanager
def postgres_schema():
    """A private schema for one test, dropped afterwards: tests never see each other's rows."""
    require_postgres()
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def private_instance_folder(tmp_path_factory):
    """The instance folder of every app the tests do not give one: in this process and in the
    processes the tests start, which inherit the variable."""
    path = tmp_path_factory.mktemp("app") / "instance"
    previous = os.environ.get(INSTANCE_PATH_VARIABLE)
    os.environ[INSTANCE_PATH_VARIABLE] = str(path)
    yield path
    if previous is None:
        os.environ.pop(INSTANCE_PATH_VARIABLE, None)
    else:
        os.environ[INSTANCE_PATH_VARIABLE] = previous


@pytest.fixture
def make_app(tmp_path):
    """Build apps: ``make_app(database="sqlite"|"postgresql", cache="simple"|"redis", **config)``.

    Apps made in one test with the same ``shared`` name use the same database and Redis prefix,
    as two hosts of one deployment would.
    """
    stack = contextlib.ExitStack()
    shared: dict[str, dict] = {}

    def build(database: str = "sqlite", cache: str = "simple", create_schema: bool = True,
              shared_as: str | None = None, **config):
        settings = shared.get(shared_as) if shared_as else None
        if settings is None:
            settings = {"SECRET_KEY": "test-" + uuid.uuid4().hex}
            if database == "sqlite":
                settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path}/{uuid.uuid4().hex[:8]}.sqlite"
            else:
                schema = stack.enter_context(postgres_schema())
                settings["SQLALCHEMY_DATABASE_URI"] = PG_URL
                settings["SQLALCHEMY_ENGINE_OPTIONS"] = {
                    "pool_pre_ping": True,
                    "connect_args": {"options": f"-csearch_path={schema}"},
                }
            if cache == "redis":
                require_redis()
                prefix = f"alignwork-test-{uuid.uuid4().hex[:10]}:"
                settings.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=REDIS_URL, CACHE_KEY_PREFIX=prefix)
                stack.callback(_delete_prefix, prefix)
            else:
                settings.update(CACHE_TYPE="SimpleCache", CACHE_KEY_PREFIX="alignwork:")
            if shared_as:
                shared[shared_as] = settings
        instance = tmp_path / f"instance-{uuid.uuid4().hex[:8]}"
        app = create_app({"TESTING": True, **settings, **config}, instance_path=str(instance))
        app.test_client_class = TenantClient
        with app.app_context():
            if create_schema:
                db.create_all()
                stamp_head()
            stack.callback(_dispose, app)
        return app

    yield build
    stack.close()


def stamp_head() -> None:
    """Record the schema ``create_all`` made as this release's head (test_migrations holds the
    two equal), as ``flask db upgrade`` would: the app answers 503 on an unmigrated database."""
    with db.engine.begin() as connection:
        MigrationContext.configure(connection).stamp(_migrations(), "head")


@functools.cache
def _migrations() -> ScriptDirectory:
    return ScriptDirectory(str(Path(__file__).resolve().parents[1] / "alignwork" / "migrations"))


def _dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of the test's own, to stop, restart or flush without touching others."""
    from tests.redis_servers import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str:
    return request.param


@pytest.fixture(params=["simple", "redis"])
def cache_backend(request) -> str:
    return request.param


@pytest.fixture
def app(make_app, database):
    """An app on each database, with the in-process cache."""
    return make_app(database=database)


@pytest.fixture
def cached_app(make_app, cache_backend):
    """An app on SQLite with each cache backend."""
    return make_app(cache=cache_backend)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def token_for(app, tenant_id: str | None, expires_in: int = 3600, scope: str = "tenant") -> str:
    with app.app_context():
        return issue_token(tenant_id, expires_in, scope)


class TenantClient(FlaskClient):
    """Sends the bearer token of the tenant a request names in ``tenantId``, as the dashboard
    does, unless the test gives its own ``Authorization`` header (or ``auth=False``)."""

    def open(self, *args, auth: bool = True, **kwargs):
        headers = dict(kwargs.get("headers") or {})
        if auth and "Authorization" not in headers:
            tenant_id = _named_tenant(args[0] if args and isinstance(args[0], str) else "", kwargs)
            if tenant_id:
                headers["Authorization"] = "Bearer " + token_for(self.application, tenant_id)
                kwargs["headers"] = headers
        return super().open(*args, **kwargs)


def _named_tenant(path: str, kwargs) -> str | None:
    body = kwargs.get("json")
    if isinstance(body, dict) and isinstance(body.get("tenantId"), str):
        return body["tenantId"]
    query = kwargs.get("query_string")
    if isinstance(query, dict):
        return query.get("tenantId")
    values = parse_qs(query if isinstance(query, str) else urlsplit(path).query).get("tenantId")
    return values[0] if values else None


SAO_JOSE_NAME = "Clínica São José"  # a clinic name that is not ASCII, to be carried intact


class Builder:
    """The set-up steps many tests repeat: tenants, patients, appointments."""

    def __init__(self, app):
        self.app = app

    def tenant(self, tenant_id: str = "acme", timezone: str = "America/Recife",
               name: str | None = None) -> str:
        with self.app.app_context():
            tenants.create_tenant(tenant_id, name=name, timezone=timezone)
        return tenant_id

    def sao_jose(self) -> str:
        """Tenant ``sao-jose``, in Recife, named ``SAO_JOSE_NAME``."""
        return self.tenant("sao-jose", name=SAO_JOSE_NAME)

    def patient(self, tenant_id: str, name: str = "Ana") -> int:
        with self.app.app_context():
            return patients.create_patient(tenant_id, name).id

    def appointments(self, tenant_id: str, rows, patient_id: int | None = None) -> list[int]:
        """Insert ``(starts_at, status)`` pairs in one commit (which invalidates, like any write)."""
        patient_id = patient_id or self.patient(tenant_id)
        with self.app.app_context():
            objects = [
                Appointment(tenant_id=tenant_id, patient_id=patient_id, starts_at=starts_at,
                            duration_min=30, status=status)
                for starts_at, status in rows
            ]
            db.session.add_all(objects)
            db.session.commit()
            return [a.id for a in objects]


@pytest.fixture
def build(app) -> Builder:
    return Builder(app)


@contextlib.contextmanager
def count_statements(app):
    """Count SQL statements sent by ``app``'s engine inside the block: ``with ... as seen``."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


class Tags(HTMLParser):
    """The tags of an HTML page, and whether it holds inline script or style."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_script = False
        self.inline_style = False
        self._in = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        self._in = tag
        if "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline_style = True
        if tag == "style":
            self.inline_style = True

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.inline_script = True

    def find(self, tag=None, **wanted):
        return [attrs for name, attrs in self.tags
                if (tag is None or name == tag) and all(attrs.get(k.replace("_", "-")) == v for k, v in wanted.items())]


def parse_html(response) -> Tags:
    tags = Tags()
    tags.feed(response.get_data(as_text=True))
    return tags


def rollup_counts(tenants: set[str] | None = None) -> dict:
    """The non-zero rows of the rollup for ``tenants`` (all by default; inside an app context)."""
    query = sa.select(AppointmentCount)
    if tenants is not None:
        query = query.where(AppointmentCount.tenant_id.in_(tenants))
    return {(c.tenant_id, c.bucket, c.status): c.n for c in db.session.scalars(query) if c.n}


def counted_appointments(tenants: set[str] | None = None) -> dict:
    """What the rollup must hold: the appointments counted one by one, bucketed in Python."""
    query = sa.select(Appointment)
    if tenants is not None:
        query = query.where(Appointment.tenant_id.in_(tenants))
    totals: dict = {}
    for a in db.session.scalars(query):
        if a.status in COUNTED_STATUSES:
            key = (a.tenant_id, bucket_of(a.starts_at), a.status)
            totals[key] = totals.get(key, 0) + 1
    return totals
