"""Swagger UI's own files, served by the app, so ``/api/docs`` works with no internet access.

flask-smorest renders the docs page and loads ``swagger-ui-bundle.js``,
``swagger-ui-standalone-preset.js`` and ``swagger-ui.css`` from ``OPENAPI_SWAGGER_UI_URL``,
which the config points here. The files are the Swagger UI distribution that the pinned
flask-swagger-ui package ships (its version is Swagger UI's); only its files are used, not its
blueprint, since flask-smorest already renders the page from the app's OpenAPI document.
"""

from __future__ import annotations

import os

import flask_swagger_ui
from flask import Blueprint

SWAGGER_UI_DIST = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")

bp = Blueprint("docs", __name__, static_folder=SWAGGER_UI_DIST, static_url_path="/api/docs/assets")
