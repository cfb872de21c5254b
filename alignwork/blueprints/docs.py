"""Swagger UI's own files, served by the app, so ``/api/docs`` works with no internet access.

flask-smorest renders the docs page and loads ``swagger-ui-bundle.js``,
``swagger-ui-standalone-preset.js`` and ``swagger-ui.css`` from ``OPENAPI_SWAGGER_UI_URL``,
which the config points here. The files are the Swagger UI distribution that the pinned
flask-swagger-ui package ships (its version is Swagger UI's); only its files are used, not its
blueprint, since flask-smorest already renders the page from the app's OpenAPI document.

The page is the app's ``templates/swagger_ui.html``, which replaces flask-smorest's own: its
script is a file, so the page carries the security headers of the dashboard's pages (with
``security.DOCS_POLICY``), and it shows the app's icon and how to get a token.
"""

from __future__ import annotations

import os

import flask_swagger_ui
from flask import Blueprint, Response, request

from ..security import DOCS_POLICY, protect_page

SWAGGER_UI_DIST = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")
DOCS_PAGE = "api-docs.openapi_swagger_ui"  # flask-smorest's blueprint and view

bp = Blueprint("docs", __name__, static_folder=SWAGGER_UI_DIST, static_url_path="/api/docs/assets")


@bp.after_app_request
def _protect_the_docs_page(response: Response) -> Response:
    """flask-smorest registers the page in a blueprint of its own; this one adds its headers."""
    if request.endpoint == DOCS_PAGE:
        return protect_page(response, DOCS_POLICY)
    return response
