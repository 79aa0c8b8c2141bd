"""The nginx config in deploy/ for real: nginx with TLS on loopback in front of two
daphne processes (one when the run has no Redis to share), and Chromium chatting
through it. A reply started through one process streams in a tab served by the other,
and Stop works from either tab."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CI
from tests.live import (
    CHROMIUM_ARGS,
    ROOT,
    daphne,
    e2e_database,
    free_port,
    migrate,
    queue_fault,
    self_signed_certificate,
    server_env,
    sign_up,
    simulator_process,
    wait_for_port,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NGINX = Path("/usr/sbin/nginx")
SITE = ROOT / "deploy" / "nginx" / "parley.conf"


@pytest.fixture(autouse=True)
def _needs_nginx():
    if not NGINX.exists():
        if CI:
            pytest.fail("CI=true but nginx is missing at /usr/sbin/nginx (.ci/run installs it)")
        pytest.skip("nginx is not installed at /usr/sbin/nginx")


def render_site(
    directory: Path, ports: list[int], https: int, http: int, static_root: Path
) -> Path:
    """deploy/nginx/parley.conf with this machine's ports and paths, nothing else changed."""
    cert, key = self_signed_certificate(directory)
    site = SITE.read_text()
    upstreams = "".join(f"    server 127.0.0.1:{port};\n" for port in ports)
    site = re.sub(r"(    server 127\.0\.0\.1:800\d;\n)+", upstreams, site)
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "server_name parley.example.com;": "server_name localhost;",
        "/etc/ssl/parley/fullchain.pem": str(cert),
        "/etc/ssl/parley/privkey.pem": str(key),
        "/srv/parley/staticfiles/": f"{static_root}/",
    }
    for old, new in replacements.items():
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    main = directory / "nginx.conf"
    main.write_text(
        f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    {site}
}}
"""
    )
    return main


@pytest.fixture
def behind_nginx(tmp_path):
    two = bool(os.environ.get("REDIS_URL"))
    https, http = free_port(), free_port()
    with (
        e2e_database(tmp_path) as database_url,
        simulator_process(60, tmp_path / "simulator.log") as simulator_url,
    ):
        env = server_env(
            database_url,
            DEMO_UPSTREAM_URL=simulator_url,
            ALLOWED_HOSTS="localhost",
            CSRF_TRUSTED_ORIGINS=f"https://localhost:{https}",
            SECURE_COOKIES="true",
            SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
            SECURE_HSTS_SECONDS="0",
            STATIC_ROOT=str(tmp_path / "staticfiles"),
        )
        migrate(env)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        logs = [tmp_path / "daphne-a.log", tmp_path / "daphne-b.log"][: 2 if two else 1]
        with contextlib.ExitStack() as stack:
            ports = [
                int(
                    stack.enter_context(daphne(env, log, extra=("--proxy-headers",))).rsplit(":")[
                        -1
                    ]
                )
                for log in logs
            ]
            config = render_site(tmp_path, ports, https, http, tmp_path / "staticfiles")
            check = subprocess.run(
                [str(NGINX), "-t", "-c", str(config)], capture_output=True, text=True
            )
            assert check.returncode == 0, check.stderr
            nginx = subprocess.Popen(
                [str(NGINX), "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stack.enter_context((tmp_path / "nginx.out").open("wb")),
            )
            try:
                wait_for_port(https, nginx)
                yield f"https://localhost:{https}", f"http://localhost:{http}", logs, simulator_url
            finally:
                nginx.terminate()
                nginx.wait(timeout=10)


def _socket_counts(logs: list[Path]) -> list[int]:
    return [
        log.read_text(errors="replace").count("WSCONNECT") if log.exists() else 0 for log in logs
    ]


def test_chatting_through_nginx_across_two_processes(behind_nginx):
    import httpx
    from playwright.sync_api import sync_playwright

    base_url, plain_url, logs, simulator_url = behind_nginx
    # Plain HTTP is sent to HTTPS; /metrics is not served through the proxy.
    assert httpx.get(f"{plain_url}/login/").status_code == 301
    assert httpx.get(f"{base_url}/metrics", verify=False).status_code == 403
    static = httpx.get(f"{base_url}/static/chat/chat.css", verify=False)
    assert static.status_code == 200 and "immutable" in static.headers["cache-control"]

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        context = chromium.new_context(ignore_https_errors=True, bypass_csp=True)
        first = context.new_page()
        first.set_default_timeout(20_000)
        sign_up(first, base_url)
        first.get_by_role("button", name="New chat").click()
        first.wait_for_url("**/c/*/")
        first.wait_for_function("document.querySelector('[ws-connect]') && htmx")
        first.wait_for_timeout(500)
        counts = _socket_counts(logs)
        opened_by_first = [i for i, n in enumerate(counts) if n]
        # A second tab whose socket another process serves (when there are two).
        second = context.new_page()
        second.set_default_timeout(20_000)
        for _ in range(8):
            # nginx takes turns per request: one more request shifts which process the
            # next socket lands on.
            httpx.get(f"{base_url}/healthz", verify=False)
            before = _socket_counts(logs)
            second.goto(first.url)
            second.wait_for_function("document.querySelector('[ws-connect]') && htmx")
            second.wait_for_timeout(500)
            after = _socket_counts(logs)
            served_by = [i for i in range(len(logs)) if after[i] > before[i]]
            if len(logs) == 1 or (served_by and served_by[0] not in opened_by_first):
                break
        else:
            pytest.fail(f"nginx never sent the second tab to the other process: {after}")

        queue_fault(simulator_url, "pace=8")
        composer = first.get_by_label("Message", exact=True)
        composer.fill("Tell me a long story through the proxy")
        composer.press("Enter")
        streaming = ".message.assistant.status-streaming .streaming-text"
        second.wait_for_function(f"document.querySelector('{streaming}')?.textContent.length > 20")
        second.get_by_role("button", name="Stop").click()
        first.locator(".message.assistant.status-stopped").wait_for()
        second.locator(".message.assistant.status-stopped").wait_for()

        # And the other way round: sent through the second tab's process, stopped from
        # the first tab.
        queue_fault(simulator_url, "pace=8")
        composer = second.get_by_label("Message", exact=True)
        composer.fill("Another long one, please")
        composer.press("Enter")
        first.wait_for_function(f"document.querySelector('{streaming}')?.textContent.length > 20")
        first.get_by_role("button", name="Stop").click()
        for page in (first, second):
            page.wait_for_function(
                "document.querySelectorAll('.message.assistant.status-stopped').length === 2"
            )
        chromium.close()
