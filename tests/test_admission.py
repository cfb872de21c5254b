"""Authentication no view can skip: a view added to any API blueprint, with no code of its own
about tokens, refuses a missing, expired, revoked or other tenant's token (and a tenant token on
the operators' blueprint), and serves a good one.

The views are added in a fresh interpreter, before the app is built: a blueprint takes no new
routes once any app of this test process has registered it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import json, sys
from flask.views import MethodView
from alignwork.blueprints import appointments, operations, patients, stats, tenant

paths = {}
for module in (appointments, patients, stats, tenant, operations):
    blp = module.blp
    path = f"/added-by-a-test-{blp.name}"

    @blp.route(path)
    class AddedLater(MethodView):
        def get(self):
            return {"served": True}

    paths[blp.name] = (blp.url_prefix or "") + path

from alignwork import create_app
from alignwork.auth import issue_token
from alignwork.extensions import db
from alignwork.services import tenants

app = create_app({"TESTING": True, "SECRET_KEY": "admission-test", "CACHE_TYPE": "SimpleCache",
                  "SQLALCHEMY_DATABASE_URI": "sqlite:///" + sys.argv[1]})
with app.app_context():
    db.create_all()
    tenants.create_tenant("acme")
    tenants.create_tenant("rival")
    tokens = {
        "good": issue_token("acme", 3600),
        "expired": issue_token("acme", -5),
        "other tenant": issue_token("rival", 3600),
        "admin": issue_token(None, 3600, scope="admin"),
        "expired admin": issue_token(None, -5, scope="admin"),
    }
    tokens["revoked"] = issue_token("acme", 3600)
    tenants.revoke_tokens("acme")
    tokens["issued after revocation"] = issue_token("acme", 3600)

client = app.test_client()
results = {}
for name, path in paths.items():
    for case, token in [("missing", None), *tokens.items()]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.get(path + "?tenantId=acme" if name != "operations" else path, headers=headers)
        results[f"{name} / {case}"] = response.status_code
    # Revocation is checked before the tenant a request names, as before admission moved here.
    query = "?tenantId=rival" if name != "operations" else ""
    revoked = client.get(path + query, headers={"Authorization": "Bearer " + tokens["revoked"]})
    results[f"{name} / revoked, naming another tenant"] = revoked.status_code
print(json.dumps(results))
"""

TENANT_BLUEPRINTS = ("appointments", "patients", "stats", "tenant")


@pytest.fixture(scope="module")
def statuses(tmp_path_factory):
    database = tmp_path_factory.mktemp("admission") / "db.sqlite"
    result = subprocess.run([sys.executable, "-c", _PROBE, str(database)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("blueprint", TENANT_BLUEPRINTS)
@pytest.mark.parametrize("case, status", [("missing", 401), ("expired", 401), ("revoked", 401),
                                          ("other tenant", 403), ("admin", 403),
                                          ("revoked, naming another tenant", 401),
                                          ("issued after revocation", 200)])
def test_a_view_added_to_a_tenant_blueprint_is_admitted_like_the_others(statuses, blueprint, case, status):
    assert statuses[f"{blueprint} / {case}"] == status


@pytest.mark.parametrize("case, status", [("missing", 401), ("expired admin", 401), ("revoked", 401),
                                          ("issued after revocation", 403), ("admin", 200)])
def test_a_view_added_to_the_operators_blueprint_needs_an_admin_token(statuses, case, status):
    assert statuses[f"operations / {case}"] == status
