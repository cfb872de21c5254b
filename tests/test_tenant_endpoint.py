"""GET /api/v1/tenant: the name and zone a dashboard heads its page with, from the cached tenant
record, refused exactly as mega-stats refuses."""

from __future__ import annotations

import pytest

from alignwork.extensions import cache
from alignwork.services import tenants
from tests.conftest import SAO_JOSE_NAME, Builder, count_statements, token_for

TENANT = "/api/v1/tenant"
STATS = "/api/v1/appointments/mega-stats"


@pytest.fixture
def app(cached_app):
    build = Builder(cached_app)
    build.sao_jose()
    build.tenant("rival", name="Rival", timezone="Asia/Tokyo")
    return cached_app


def get(app, path, token, query=None):
    return app.test_client().get(path, query_string=query or {},
                                 headers={"Authorization": f"Bearer {token}"} if token else {}, auth=False)


def test_the_tenant_is_its_id_name_and_zone_with_the_name_intact(app):
    response = get(app, TENANT, token_for(app, "sao-jose"))
    assert response.status_code == 200
    assert response.get_json() == {"id": "sao-jose", "name": SAO_JOSE_NAME, "timezone": "America/Recife"}
    assert response.get_json()["name"].encode() == SAO_JOSE_NAME.encode("utf-8")  # not mangled to ASCII
    named = get(app, TENANT, token_for(app, "sao-jose"), {"tenantId": "sao-jose"})
    assert named.get_json()["name"] == SAO_JOSE_NAME


def test_a_cached_record_is_answered_with_no_sql(app):
    token = token_for(app, "sao-jose")
    with app.app_context():
        cache.clear()  # the commit that created the tenant published its record: start without it
    with count_statements(app) as first:
        assert get(app, TENANT, token).status_code == 200
    with count_statements(app) as second:
        assert get(app, TENANT, token).get_json()["name"] == SAO_JOSE_NAME
    assert first and second == []  # the first read the row; the second, only the cache


def test_a_dashboards_poll_leaves_the_record_the_tenant_endpoint_reads(app):
    token = token_for(app, "sao-jose")
    assert get(app, STATS, token).status_code == 200
    with count_statements(app) as seen:
        assert get(app, TENANT, token).status_code == 200
    assert seen == []


def token_of(app, who: str | None) -> str | None:
    return {"admin": lambda: token_for(app, None, scope="admin"), None: lambda: None,
            "forged": lambda: "not.a.token"}.get(who, lambda: token_for(app, who))()


@pytest.mark.parametrize("who,query,status", [
    ("rival", {"tenantId": "sao-jose"}, 403),  # another tenant's token naming this tenant
    ("sao-jose", {"tenantId": "rival"}, 403),  # this tenant's token naming another
    ("admin", {"tenantId": "sao-jose"}, 403),  # admin tokens act for no tenant
    ("admin", {}, 403),
    (None, {}, 401),
    ("forged", {}, 401),
])
def test_refused_as_mega_stats_refuses(app, who, query, status):
    token = token_of(app, who)
    tenant, stats = get(app, TENANT, token, query), get(app, STATS, token, query)
    assert tenant.status_code == stats.status_code == status
    assert tenant.get_json()["message"] == stats.get_json()["message"]
    assert "name" not in tenant.get_json() and "today" not in stats.get_json()


@pytest.mark.parametrize("named", ["sao-jose\n", "Sao Jose", ""])
def test_a_malformed_tenant_id_is_a_400_naming_it_as_mega_stats_does(app, named):
    """The words differ (tenancy checks the query before the view, mega-stats in its schema);
    the status and the field named do not."""
    token = token_of(app, "sao-jose")
    tenant, stats = get(app, TENANT, token, {"tenantId": named}), get(app, STATS, token, {"tenantId": named})
    assert tenant.status_code == stats.status_code == 400
    assert list(tenant.get_json()["errors"]) == list(stats.get_json()["errors"]) == ["tenantId"]


def test_a_revoked_token_is_refused_by_both(app):
    token = token_for(app, "sao-jose")
    assert get(app, TENANT, token).status_code == 200
    with app.app_context():
        tenants.revoke_tokens("sao-jose")
    assert get(app, TENANT, token).status_code == get(app, STATS, token).status_code == 401


def test_the_openapi_document_describes_it(app):
    spec = app.test_client().get("/api/openapi.json", auth=False).get_json()
    operation = spec["paths"][TENANT]["get"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["tenantId"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][schema]["properties"]) == {"id", "name", "timezone"}
