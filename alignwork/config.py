"""Configuration defaults and the named environments that refine them.

The factory layers these under ``instance/config.py``, ``DATABASE_URL``, the ``ALIGNWORK_*``
environment variables and finally the overrides passed to ``create_app``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


class Config:
    """Defaults: a development service on SQLite and an in-process cache."""

    # Filled in by the factory with an absolute path inside the instance folder.
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # PostgreSQL ends a transaction of the app's left idle this long (connections.py): a COMMIT
    # lost on its way then holds its locks and Idempotency-Key no longer. 0: not set (PgBouncer).
    DATABASE_IDLE_TRANSACTION_SECONDS = 30

    # Flask-Caching: NullCache, SimpleCache, RedisCache, RedisSentinelCache or RedisClusterCache,
    # with Flask-Caching's CACHE_REDIS_* keys (no default: RedisCache without any connects to
    # localhost:6379). cache/settings.py checks them and resolves the name to this app's backend.
    CACHE_TYPE = "SimpleCache"
    CACHE_KEY_PREFIX = "alignwork:"
    # The safety net under invalidation: the longest an entry (or tenant record) lives after a
    # write the app never saw. None: SHARED_CACHE_TIMEOUT on a shared cache, LOCAL_CACHE_TIMEOUT
    # on a per-process one (whose entries other processes' writes cannot reach).
    CACHE_DEFAULT_TIMEOUT: int | None = None
    # How long past that an entry is kept, to answer (STALE) while the database is down.
    CACHE_STALE_SECONDS = 3600
    CACHE_THRESHOLD = 10_000
    # A cache that answers slowly must not make the API slow: fail fast, then back off.
    CACHE_REDIS_SOCKET_TIMEOUT = 0.5
    CACHE_BACKOFF_SECONDS = 5.0

    # The change listener (services/changes/listener.py): "workers" runs it in every gunicorn worker,
    # "off" leaves it to `flask stats listen` (refused with a per-process cache, which only a
    # listener in the serving process can reach). Seconds between two looks at the database.
    CHANGE_LISTENER = "workers"
    CHANGE_LISTENER_INTERVAL = 0.5

    # Longest a request waits for another one computing the same stats before computing itself.
    STATS_LOCK_WAIT_SECONDS = 5.0
    # In the last this many seconds before a zone's local midnight, polls compute the entries
    # their keys need after it (services/stats/midnight.py); 0 switches that off.
    STATS_PRECOMPUTE_SECONDS = 600
    # A poll that is a HIT or a 304 is answered before Flask builds a request (fast_path.py);
    # False sends every poll through the full path, which answers the same bytes.
    STATS_FAST_PATH = True

    # Live dashboards (services/stats/stream_hub.py, blueprints/stream.py). Caps past which a
    # stream is refused (503 for the process, 429 for a tenant; dashboards then poll): the process
    # cap is also cut to the open-files limit, less 256. Keep gunicorn's worker_connections above it.
    STREAMS_PER_PROCESS = 5000
    STREAMS_PER_TENANT = 20
    STREAM_KEEPALIVE_SECONDS = 15.0  # a comment this often, so proxies keep an idle stream open
    STREAM_MAX_SECONDS = 3600  # then the client reconnects (never past its token's expiry)
    # The reconnection delay sent (retry:), plus up to as much jitter: 1 to 2 s, so screens come
    # back within 2 s of a crashed or cut worker serving again, spread over a second.
    STREAM_RETRY_SECONDS = 1
    STREAM_WATCH_INTERVAL = 0.1  # on a shared cache: seconds between looks at watched generations
    STREAM_TICKET_SECONDS = 60  # how long a stream ticket (POST /api/v1/stream-tickets) lives

    # Signs the API tokens. Production refuses to start without one of at least 32 bytes.
    SECRET_KEY: str | None = None
    MIN_SECRET_KEY_BYTES = 32
    MAX_CONTENT_LENGTH = 64 * 1024

    # Browser origins (scheme://host[:port]) allowed to call /api/v1 from their own pages, or
    # ["*"] for any. Empty: same-origin only, as before. See cors.py.
    CORS_ORIGINS: list[str] = []

    API_TITLE = "AlignWork API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # Swagger UI's files come from the app itself (blueprints/docs.py), so the docs work offline.
    OPENAPI_SWAGGER_UI_URL = "/api/docs/assets/"
    # BaseLayout shows no validator badge; null also keeps Swagger UI from ever calling one.
    OPENAPI_SWAGGER_UI_CONFIG = {"validatorUrl": None}
    API_SPEC_OPTIONS = {
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }


class DevelopmentConfig(Config):
    pass


class ProductionConfig(Config):
    DEBUG = False


class ConfigurationError(RuntimeError):
    """The configuration cannot be deployed safely; the message says which setting."""


SHARED_CACHE_TIMEOUT = 900
LOCAL_CACHE_TIMEOUT = 30

# Settings of earlier releases, refused rather than silently ignored.
_REPLACED = {
    "STATS_CACHE_TTL": "CACHE_DEFAULT_TIMEOUT (entries now live until a write invalidates them; "
                       "this is only the safety net)",
    "TENANT_MEMO_SECONDS": "CACHE_DEFAULT_TIMEOUT (tenant records now live in the cache)",
}


def default_cache_timeout(shared: bool) -> int:
    return SHARED_CACHE_TIMEOUT if shared else LOCAL_CACHE_TIMEOUT


# What a browser sends as Origin: scheme://host[:port], no path, no trailing slash. Anything
# else would never match (flask-cors compares literally) or would be taken for a regular
# expression and matched as a prefix (flask-cors treats strings with *?[]()^$ as regexes).
_ORIGIN = re.compile(
    r"[a-z][a-z0-9+.-]*://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?",
    re.IGNORECASE,
)


def _port(origin: str) -> int:
    host_and_port = origin.split("://", 1)[1]
    tail = host_and_port.rsplit("]", 1)[-1]
    return int(tail.rsplit(":", 1)[1]) if ":" in tail else 0


def check_cors_origins(origins) -> None:
    example = 'ALIGNWORK_CORS_ORIGINS=\'["https://dashboard.example.com", "http://localhost:5173"]\''
    if not isinstance(origins, (list, tuple)):
        raise ConfigurationError(
            f"CORS_ORIGINS must be a list of origins, not {type(origins).__name__} {origins!r}; e.g. {example}"
        )
    if "*" in origins and len(origins) > 1:
        raise ConfigurationError('CORS_ORIGINS: "*" (any origin) must stand alone, not beside other origins.')
    for origin in origins:
        if origin == "*":
            continue
        if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin) or _port(origin) > 65535:
            raise ConfigurationError(
                f"CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], no path or trailing "
                f"slash); e.g. {example}"
            )


def check_always(config) -> None:
    check_cors_origins(config["CORS_ORIGINS"])
    if "DATABASE_URL" in config:  # the file's was adopted: this came from ALIGNWORK_* or overrides
        raise ConfigurationError(
            "DATABASE_URL is read from the environment variable DATABASE_URL and from "
            "instance/config.py only; elsewhere (ALIGNWORK_*) set SQLALCHEMY_DATABASE_URI.")
    for old, new in _REPLACED.items():
        if old in config:
            raise ConfigurationError(f"{old} is no longer read; use {new}.")
    if not isinstance(config.get("STATS_FAST_PATH"), bool):
        raise ConfigurationError(
            f"STATS_FAST_PATH must be true or false, not {config.get('STATS_FAST_PATH')!r}.")
    idle = config.get("DATABASE_IDLE_TRANSACTION_SECONDS")
    if isinstance(idle, bool) or not isinstance(idle, int) or idle < 0:
        raise ConfigurationError(
            f"DATABASE_IDLE_TRANSACTION_SECONDS must be whole seconds, 0 for none, not {idle!r}.")
    window = config.get("STATS_PRECOMPUTE_SECONDS")
    if isinstance(window, bool) or not isinstance(window, int) or not (window == 0 or 120 <= window <= 3600):
        raise ConfigurationError(
            f"STATS_PRECOMPUTE_SECONDS must be 0 (off) or whole seconds from 120 to 3600, not {window!r}.")
    for name in ("CACHE_DEFAULT_TIMEOUT", "CACHE_STALE_SECONDS"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ConfigurationError(f"{name} must be a whole number of seconds above 0, not {value!r}.")
    for name in ("STREAMS_PER_PROCESS", "STREAMS_PER_TENANT", "STREAM_KEEPALIVE_SECONDS", "STREAM_MAX_SECONDS",
                 "STREAM_RETRY_SECONDS", "STREAM_WATCH_INTERVAL", "STREAM_TICKET_SECONDS"):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(f"{name} must be a number of at least 0, not {value!r}.")


def check_listener(config, cache_shared: bool) -> None:
    mode, interval = config["CHANGE_LISTENER"], config["CHANGE_LISTENER_INTERVAL"]
    if mode not in ("workers", "off"):
        raise ConfigurationError(f'CHANGE_LISTENER must be "workers" or "off", not {mode!r}.')
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval <= 1:
        raise ConfigurationError(f"CHANGE_LISTENER_INTERVAL must be seconds above 0 and at most 1, not {interval!r}.")
    if mode == "off" and not cache_shared:
        raise ConfigurationError(
            'CHANGE_LISTENER = "off" needs a shared cache: a per-process cache (SimpleCache) is reached '
            "only by the listener in its own process; use RedisCache, or leave the listener on.")


def check_production(config) -> None:
    key = config.get("SECRET_KEY")
    needed = config["MIN_SECRET_KEY_BYTES"]
    if not key or len(key.encode() if isinstance(key, str) else key) < needed:
        raise ConfigurationError(
            f"SECRET_KEY must be set to at least {needed} bytes in production "
            "(ALIGNWORK_SECRET_KEY); generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if config.get("DEBUG"):
        raise ConfigurationError("DEBUG must be off in production (unset ALIGNWORK_DEBUG).")


class TestingConfig(Config):
    TESTING = True


ENVIRONMENTS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestingConfig,
}


def environment_name() -> str:
    name = os.environ.get("ALIGNWORK_ENV", "development")
    if name not in ENVIRONMENTS:
        # A typo such as "prod" must not quietly start a development server.
        raise ConfigurationError(f"ALIGNWORK_ENV must be one of {sorted(ENVIRONMENTS)}, not {name!r}")
    return name


def database_url_from_env() -> str | None:
    """The deployment convention ``DATABASE_URL`` (the factory rewrites it for psycopg 3)."""
    return os.environ.get("DATABASE_URL") or None


DATABASE_URL_IN_FILE = "DATABASE_URL in instance/config.py"


def database_url_in_file(config: dict) -> str:
    """``DATABASE_URL`` written in ``instance/config.py``, as the deployment convention is often
    written there too, becomes the file's ``SQLALCHEMY_DATABASE_URI`` (left in the config, it
    would be ignored and the app would quietly use SQLite). Returns the setting the URL came from
    so far, for messages; a file that sets both is refused, since one of them would be ignored."""
    url = config.pop("DATABASE_URL", None)
    if url is None:
        return "SQLALCHEMY_DATABASE_URI"
    if config.get("SQLALCHEMY_DATABASE_URI") is not None:
        raise ConfigurationError(
            "instance/config.py sets both DATABASE_URL and SQLALCHEMY_DATABASE_URI; keep one.")
    config["SQLALCHEMY_DATABASE_URI"] = url
    return DATABASE_URL_IN_FILE


def database_url_setting(layered: str, config_overrides: Mapping[str, Any] | None = None) -> str:
    """The setting the database URL came from, for messages: ``layered`` (what the file and the
    ``DATABASE_URL`` variable left), unless a later layer set ``SQLALCHEMY_DATABASE_URI``."""
    if "SQLALCHEMY_DATABASE_URI" in (config_overrides or {}) or \
            "ALIGNWORK_SQLALCHEMY_DATABASE_URI" in os.environ:
        return "SQLALCHEMY_DATABASE_URI"
    return layered


def normalise_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` URLs for psycopg 3 (SQLAlchemy's default is psycopg2).
    Anything but a string is left as it is, for ``check_database_url`` to refuse."""
    for scheme in ("postgres://", "postgresql://"):
        if isinstance(url, str) and url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


_DATABASE_URL_EXAMPLES = "postgresql://user:password@host:5432/name or sqlite:////path/to/file.sqlite"
_PASSWORD = re.compile(r"(://[^/:@\s]*:)\S*@")


def shown_url(url: object) -> str:
    """A database URL fit for a message or a log: the password hidden, and the driver left out
    (``postgresql://``, as the operator writes it, rather than the ``postgresql+psycopg://`` the
    factory makes of it)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", str(url))
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def check_database_url(url: object, setting: str) -> None:
    """Refuse a URL SQLAlchemy cannot use at all, before an engine is built from it: one that
    does not parse, or names a database type or driver this installation lacks. (A server that
    cannot be reached is no refusal: the server starts without its database and serves its
    cache; see ``commands/refusals.py`` for the ``flask`` commands, which cannot.)"""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"{setting} is not a database URL: {shown_url(url)!r}; e.g. {_DATABASE_URL_EXAMPLES}.") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigurationError(
            f"{setting} names a database SQLAlchemy does not know, {parsed.get_backend_name()!r} "
            f"({shown_url(url)}); e.g. {_DATABASE_URL_EXAMPLES}.") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        missing = f"no module {exc.name}" if exc.name else str(exc)
        raise ConfigurationError(
            f"{setting} ({shown_url(url)}) needs the {dialect.name}+{dialect.driver} driver, which is not "
            f"installed ({missing}); install it, or use {_DATABASE_URL_EXAMPLES}.") from None
