"""/api/docs with no internet: Swagger UI's files come from the app itself, at a pinned version."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from tests.conftest import parse_html as parse


def test_the_docs_page_loads_swagger_ui_from_the_app(client):
    page = client.get("/api/docs", auth=False)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    tags = parse(page)
    assets = [a["src"] for a in tags.find("script") if "src" in a] + [a["href"] for a in tags.find("link")]
    assert sorted(assets) == ["/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui-standalone-preset.js",
                              "/api/docs/assets/swagger-ui.css"]
    for url in assets:
        asset = client.get(url, auth=False)
        assert asset.status_code == 200 and len(asset.data) > 10_000, url


def test_the_served_swagger_ui_is_the_pinned_one(client):
    pinned = version("flask-swagger-ui")  # flask-swagger-ui's version is the Swagger UI it ships
    assert re.search(r"^flask-swagger-ui==" + re.escape(pinned) + "$",
                     (Path(__file__).resolve().parents[1] / "requirements.txt").read_text(), re.MULTILINE)
    served = client.get("/api/docs/assets/VERSION", auth=False).get_data(as_text=True).strip()
    assert served == "v" + pinned


def test_a_missing_asset_is_a_json_404(client):
    response = client.get("/api/docs/assets/no-such-file.js", auth=False)
    assert response.status_code == 404 and response.get_json()["code"] == 404
