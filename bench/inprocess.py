"""The hot path's cost in process: a mega-stats HIT and a 304 against a bare Flask route that
returns the same JSON body, each called through its WSGI callable in the same process (no
server, no network), so the ratio holds on a busy machine. Prometheus runs in multiprocess mode
as under gunicorn, which is why the measurement runs in a child process of its own: the mode is
chosen when prometheus_client is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, statistics, sys, time
from flask import Flask
from werkzeug.test import EnvironBuilder
from alignwork import create_app
from alignwork.auth import issue_token
from alignwork.extensions import db
from alignwork.services import tenants

settings, tenant, calls, rounds = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
app = create_app(settings)
with app.app_context():
    db.create_all()
    try:
        tenants.get_tenant(tenant)
    except Exception:
        tenants.create_tenant(tenant)
    token = issue_token(tenant, 3600)
PATH = "/api/v1/appointments/mega-stats"

def environ(**headers):
    return EnvironBuilder(path=PATH, query_string="tenantId=" + tenant, headers=headers).get_environ()

def call(wsgi, env):
    started = []
    body = wsgi(dict(env), lambda status, headers, exc_info=None: started.append((status, dict(headers))))
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    return started[0][0], started[0][1], data

hit_env = environ(Authorization="Bearer " + token)
call(app.wsgi_app, hit_env)
status, headers, stats_body = call(app.wsgi_app, hit_env)
assert status.startswith("200") and headers["X-Cache"] == "HIT", (status, headers)
not_modified_env = environ(Authorization="Bearer " + token, **{"If-None-Match": headers["ETag"]})
assert call(app.wsgi_app, not_modified_env)[0].startswith("304")

floor = Flask("floor")
payload = json.loads(stats_body)

@floor.get(PATH)
def bare():
    return payload

floor_env = environ()

def per_call(wsgi, env):
    began = time.perf_counter()
    for _ in range(calls):
        call(wsgi, env)
    return (time.perf_counter() - began) / calls * 1e6

runs = {"HIT": [], "304": [], "bare route": []}
for _ in range(rounds):
    runs["bare route"].append(per_call(floor.wsgi_app, floor_env))
    runs["HIT"].append(per_call(app.wsgi_app, hit_env))
    runs["304"].append(per_call(app.wsgi_app, not_modified_env))
print(json.dumps({name: statistics.median(values) for name, values in runs.items()}))
"""


def measure(settings: dict, tenant: str, calls: int = 2000, rounds: int = 7) -> dict[str, float]:
    """Microseconds per request (medians of ``rounds`` alternated runs) for the HIT, the 304
    and the bare route, with the app built from ``settings``."""
    with tempfile.TemporaryDirectory(prefix="alignwork-inprocess-") as folder:
        env = {name: value for name, value in os.environ.items() if not name.startswith("ALIGNWORK_")}
        env.update(PROMETHEUS_MULTIPROC_DIR=folder, ALIGNWORK_INSTANCE_PATH=folder + "/instance")
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(settings), tenant, str(calls), str(rounds)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError("in-process measurement failed: " + done.stderr.strip()[-600:])
    return json.loads(done.stdout.strip().splitlines()[-1])
