"""/api/docs with no internet: Swagger UI's files come from the app itself, at a pinned version."""

from __future__ import annotations

import re
from html import unescape
from importlib.metadata import version
from pathlib import Path

from alignwork.security import DOCS_POLICY
from tests.conftest import parse_html as parse


def test_the_docs_page_loads_swagger_ui_from_the_app(client):
    page = client.get("/api/docs", auth=False)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    tags = parse(page)
    assets = [a["src"] for a in tags.find("script") if "src" in a] + [a["href"] for a in tags.find("link")]
    swagger = sorted(url for url in assets if url.startswith("/api/docs/assets/"))
    assert swagger == ["/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui-standalone-preset.js",
                       "/api/docs/assets/swagger-ui.css"]
    for url in swagger:
        asset = client.get(url, auth=False)
        assert asset.status_code == 200 and len(asset.data) > 10_000, url
    own = sorted(set(assets) - set(swagger))  # the icon, the script that starts Swagger UI, its note's style
    assert own == ["/static/css/docs.css", "/static/favicon.svg", "/static/js/docs.js"]
    for url in own:
        assert client.get(url, auth=False).status_code == 200, url


def test_the_docs_page_has_the_pages_icon_and_security_headers(client):
    """Its icon was a /favicon.ico 404, and it had none of the pages' headers: its inline script
    would not have run under their policy, so the script is a file now."""
    page = client.get("/api/docs", auth=False)
    tags = parse(page)
    assert tags.find("link", rel="icon", href="/static/favicon.svg")
    assert not tags.inline_script and not tags.inline_style
    assert page.headers["Content-Security-Policy"] == DOCS_POLICY
    assert "unsafe" not in DOCS_POLICY and "script-src 'self'" in DOCS_POLICY
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_page_says_how_to_get_a_token_with_the_real_command(app, client):
    html = client.get("/api/docs", auth=False).get_data(as_text=True)
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert "flask tenants token <tenant-id>" in text and "flask tenants token --admin" in text
    token = app.cli.get_command(None, "tenants").get_command(None, "token")
    assert [p.name for p in token.params if p.name in ("tenant_id", "admin")] == ["tenant_id", "admin"]


def test_the_served_swagger_ui_is_the_pinned_one(client):
    pinned = version("flask-swagger-ui")  # flask-swagger-ui's version is the Swagger UI it ships
    assert re.search(r"^flask-swagger-ui==" + re.escape(pinned) + "$",
                     (Path(__file__).resolve().parents[1] / "requirements.txt").read_text(), re.MULTILINE)
    served = client.get("/api/docs/assets/VERSION", auth=False).get_data(as_text=True).strip()
    assert served == "v" + pinned


def test_a_missing_asset_is_a_json_404(client):
    response = client.get("/api/docs/assets/no-such-file.js", auth=False)
    assert response.status_code == 404 and response.get_json()["code"] == 404
