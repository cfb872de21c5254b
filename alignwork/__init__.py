"""AlignWork: appointments for clinics, and the cached stats their dashboards poll."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import (ENVIRONMENTS, database_url_from_env, database_url_in_file, database_url_setting,
                     environment_name)

INSTANCE_PATH_VARIABLE = "ALIGNWORK_INSTANCE_PATH"


def create_app(config_overrides: Mapping[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """Build the app. Config layers: defaults, instance/config.py, DATABASE_URL,
    ALIGNWORK_* variables, then ``config_overrides``.

    The instance folder (local settings, the SQLite database) is ``instance/`` beside the
    package unless ``instance_path`` or ``ALIGNWORK_INSTANCE_PATH`` names another: the tests
    give every app a private one, so a developer's ``instance/config.py`` never leaks into them.

    A setting the app cannot work with raises ``ConfigurationError`` naming it, before anything
    is bound. While the ``flask`` command loads the app, that ends the command in one line
    instead of a traceback (``commands/refusals.py``).
    """
    from .commands.refusals import refused_settings_end_the_command

    with refused_settings_end_the_command():
        app, database_setting = _configured_app(config_overrides, instance_path)
    app.json.sort_keys = False

    from . import auth, commands, connections, cors, errors, fast_path, http_metrics, metrics, security
    from .blueprints import appointments, docs, health, operations, pages, patients, stats, stream, tenant
    from .extensions import api, cache, db, migrate
    from .services.changes import generations, session_hooks

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            metrics.count_statements(engine)
    connections.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    cache.init_app(app)
    api.init_app(app)

    api.register_blueprint(patients.blp)
    api.register_blueprint(stats.blp)
    api.register_blueprint(stream.blp)
    api.register_blueprint(tenant.blp)
    api.register_blueprint(appointments.blp)
    api.register_blueprint(operations.blp)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(pages.bp)
    errors.init_app(app)
    security.init_app(app)
    http_metrics.init_app(app)
    cors.init_app(app)
    auth.init_app(app)
    generations.init_app(app)
    session_hooks.init_app(app)
    commands.init_app(app, database_setting)
    fast_path.init_app(app)  # last: it wraps the app's finished WSGI callable

    return app


def _configured_app(config_overrides: Mapping[str, Any] | None,
                    instance_path: str | None) -> tuple[Flask, str]:
    """The app with its configuration layered and checked, nothing bound to it yet, and the
    setting its database URL came from (for messages)."""
    instance_path = instance_path or os.environ.get(INSTANCE_PATH_VARIABLE) or None
    if instance_path:
        instance_path = os.path.abspath(instance_path)
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)

    app.config.from_object(ENVIRONMENTS[environment_name()])
    app.config.from_pyfile("config.py", silent=True)
    database_setting = database_url_in_file(app.config)
    if url := database_url_from_env():
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        database_setting = "DATABASE_URL"
    app.config.from_prefixed_env("ALIGNWORK")
    app.config.update(config_overrides or {})
    database_setting = database_url_setting(database_setting, config_overrides)
    _finish_config(app, database_setting)
    return app, database_setting


def _finish_config(app: Flask, database_setting: str) -> None:
    from .cache.backend import is_shared
    from .cache.settings import configure_cache
    from .config import (check_always, check_database_url, check_listener, check_production,
                         default_cache_timeout, normalise_database_url)

    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        uri = "sqlite:///" + os.path.join(app.instance_path, "alignwork.sqlite")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(uri)
    check_always(app.config)
    check_database_url(app.config["SQLALCHEMY_DATABASE_URI"], database_setting)
    configure_cache(app.config)
    shared = is_shared(app.config["CACHE_TYPE"])
    if app.config["CACHE_DEFAULT_TIMEOUT"] is None:
        app.config["CACHE_DEFAULT_TIMEOUT"] = default_cache_timeout(shared)
    check_listener(app.config, shared)
    if environment_name() == "production":
        check_production(app.config)
    elif not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_urlsafe(48)
        app.logger.warning(
            "No SECRET_KEY configured: using a random one, so tokens stop working on restart and "
            "differ between workers. Set ALIGNWORK_SECRET_KEY or SECRET_KEY in instance/config.py."
        )
