"""The nginx site in docs/deploy.md, as written: ``nginx -t`` accepts it, and in front of the
shipped gunicorn it passes the mega-stats stream through as it is written (an event reaches the
client within a second of a psql INSERT; a keep-alive comment comes through alone) and polls as
usual. Only what cannot run here changes: the ports, the certificate (a self-signed one made
for the test), and the files nginx writes."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.ports import free_port
from tests.test_gunicorn import _no_server_outlives_its_test  # noqa: F401
from tests.test_stream import STATS, STREAM, _start

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"


def _site() -> str:
    found = re.findall(r"```nginx\n(.*?)```", DEPLOY.read_text(), re.S)
    assert len(found) == 1, "docs/deploy.md should hold one nginx site"
    return found[0]


def _config(tmp_path: Path, upstream: int, http_port: int, https_port: int) -> Path:
    """The documented site inside a minimal main configuration, with local ports, certificate
    and files."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=alignwork.example.com", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    site = _site()
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:80;": "",
        "listen [::]:443 ssl http2;": "",
    }
    for documented, local in replacements.items():
        assert documented in site, documented
        site = site.replace(documented, local)
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {tmp_path / 'cert.pem'};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {tmp_path / 'key.pem'};", site)
    temp = "\n".join(f"    {kind}_temp_path {tmp_path / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # nginx's workers otherwise become nobody
    config = tmp_path / "nginx.conf"
    config.write_text(f"""{user}daemon off;
pid {tmp_path / 'nginx.pid'};
error_log {tmp_path / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp_path / 'access.log'};
{temp}
{site}
}}
""")
    return config


@pytest.fixture
def nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None or shutil.which("openssl") is None:
        service_missing("nginx or openssl not found (apt-get install nginx-light)")
    return found


def test_the_documented_site_passes_nginx_t_and_proxies_the_stream_unbuffered(tmp_path, nginx):
    site = _site()
    stream = site[site.index("location = /api/v1/appointments/mega-stats/stream"):]
    assert "proxy_buffering off;" in stream and "proxy_http_version 1.1;" in stream
    assert 'proxy_set_header Connection "";' in stream
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", stream)[1])
    assert read_timeout > 15  # above the app's 15 s keep-alive

    stack = _start(tmp_path, "sqlite-simple", workers=1)
    tenant, token, patient = stack.tenant()
    http_port, https_port = free_port(), free_port()
    config = _config(tmp_path, stack.server.port, http_port, https_port)
    checked = subprocess.run([nginx, "-t", "-c", str(config), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    proxy = subprocess.Popen([nginx, "-c", str(config), "-p", str(tmp_path)], stderr=subprocess.PIPE)
    try:
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE

        def connect() -> http.client.HTTPSConnection:
            deadline = time.monotonic() + 10
            while True:
                conn = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=10, context=tls)
                try:
                    conn.connect()
                    return conn
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        headers = {"Authorization": f"Bearer {token}", "Host": "alignwork.example.com"}
        poll = connect()
        poll.request("GET", STATS, headers=headers)
        answered = poll.getresponse()
        assert answered.status == 200 and answered.getheader("X-Cache") in {"HIT", "MISS"}
        etag = answered.getheader("ETag")
        answered.read()

        conn = connect()
        conn.request("GET", STREAM, headers=headers)
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")

        def next_block() -> list[str]:
            lines = []
            while (line := response.readline().decode().rstrip("\n")) or not lines:
                if line:
                    lines.append(line)
            return lines

        first = next_block()
        while "event: stats" not in first:  # (a retry: first)
            first = next_block()
        assert f"id: {etag}" in first  # the first event, through nginx at once
        while not next_block()[0].startswith(":"):
            pass  # the keep-alive comment (1 s in this server) comes through on its own
        committed = time.monotonic()
        stack.insert(tenant, patient)
        block = next_block()
        while "event: stats" not in block:
            block = next_block()
        lag = time.monotonic() - committed
        print(f"psql INSERT to the event through nginx: {lag:.3f} s")
        assert lag < 1.0
        assert next(line for line in block if line.startswith("id: ")) != f"id: {etag}"
        conn.close()
    finally:
        proxy.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
