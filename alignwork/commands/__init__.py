"""The ``flask`` command groups, one module per group, each a thin shell over a service.

Services never import ``click`` or ``flask.cli``; these modules turn their results and errors
into output and exit codes. ``refusals`` does so for every command at once, for settings that
cannot work (a refused setting, a database that cannot be reached). The factory uses it before
the settings are known, so the groups (and the services behind them) are imported only when
an app is built.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import cache, refusals, seed, shell, stats, tenants

    for module in (refusals, tenants, cache, stats, seed, shell):
        module.init_app(app)
