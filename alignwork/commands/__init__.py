"""The ``flask`` command groups, one module per group, each a thin shell over a service.

Services never import ``click`` or ``flask.cli``; these modules turn their results and errors
into output and exit codes.
"""

from __future__ import annotations

from flask import Flask

from . import cache, seed, shell, stats, tenants


def init_app(app: Flask) -> None:
    for module in (tenants, cache, stats, seed, shell):
        module.init_app(app)
