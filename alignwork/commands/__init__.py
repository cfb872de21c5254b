"""The ``flask`` command groups, one module per group, each a thin shell over a service.

Services never import ``click`` or ``flask.cli``; these modules turn their results and errors
into output and exit codes. ``refusals`` does so for every command at once, for settings that
cannot work (a refused setting, a database that cannot be reached). The factory uses it before
the settings are known, so the groups (and the services behind them) are imported only when
an app is built.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask, database_setting: str) -> None:
    """``database_setting``: the setting the database URL came from, which a refusal names."""
    from . import cache, refusals, seed, shell, stats, tenants

    refusals.init_app(app, database_setting)
    for module in (tenants, cache, stats, seed, shell):
        module.init_app(app)
