"""Real daphne processes for browser tests, each on its own loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def run_python(script: str, env: dict[str, str] | None = None) -> str:
    """What ``script`` printed, run in a fresh interpreter from the project's root."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def under_daphne_command_line(check: str, env: dict[str, str]) -> str:
    """``daphne project.asgi:application`` (as ``make run`` starts it), up to where it
    would listen: ``check`` (Python) runs in its place, once daphne has loaded Parley.
    Returns what the process printed."""
    script = "\n".join(
        [
            "import sys",
            "from daphne.cli import CommandLineInterface",
            "from daphne.server import Server",
            "def run(server):",
            "    assert server.application is not None",
            textwrap.indent(textwrap.dedent(check).strip(), "    "),
            "Server.run = run",
            'sys.argv = ["daphne", "-b", "127.0.0.1", "-p", "0", "project.asgi:application"]',
            "CommandLineInterface.entrypoint()",
        ]
    )
    return run_python(script, env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"daphne did not listen on {port}")


@contextmanager
def e2e_database(tmp_path: Path) -> Iterator[str]:
    """A fresh database for the server processes: PostgreSQL when the run uses it."""
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
        return
    import psycopg

    name = f"parley_e2e_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(database_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "MINIMAX_API_KEY")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DEBUG": "true",
            "SECRET_KEY": "e2e-only-secret-key",
            "PARLEY_DEMO": "true",
            "DATABASE_URL": database_url,
            "DEMO_TOKENS_PER_SECOND": "30",
            "SIGNUP_MODE": "approval",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        env["REDIS_PREFIX"] = f"parley-e2e-{uuid.uuid4().hex[:6]}"
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def spawn_daphne(
    env: dict[str, str], port: int, out: IO[bytes], *, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``daphne`` serving Parley on a loopback port, its output going to ``out``."""
    return subprocess.Popen(
        [sys.executable, "-m", "daphne", *extra, "-b", "127.0.0.1", "-p", str(port)]
        + ["project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def daphne(
    env: dict[str, str], log: Path, port: int | None = None, *, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    port = port or free_port()
    with log.open("wb") as out:
        process = spawn_daphne(env, port, out, extra=extra)
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def simulator_process(pace: float, log: Path) -> Iterator[str]:
    """The upstream simulator in its own process (point DEMO_UPSTREAM_URL at it), so a
    test can queue faults for a server in another process (``queue_fault``)."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "providers.simulator", "--port", str(port), "--pace", str(pace)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=20)


def queue_fault(simulator_url: str, fault: str) -> None:
    import httpx

    httpx.post(f"{simulator_url}/_faults", json={"fault": fault}, timeout=5).raise_for_status()


#: Debian's Chromium, headless, as the browser tests and the screenshots launch it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sign_up(page: Any, base_url: str, username: str = "ada") -> None:
    """Create an account in the browser (the first one is the admin) and land home."""
    page.goto(f"{base_url}/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill("a-long-passphrase-9")
    page.get_by_label("Confirm password").fill("a-long-passphrase-9")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base_url}/")


def socket_open(page: Any) -> None:
    """Wait until the chat page's websocket extension has connected."""
    page.wait_for_function("document.querySelector('[ws-connect]') && htmx")
    page.wait_for_timeout(300)  # the handshake, after the element is processed


def new_chat(page: Any, base_url: str, *, persona: str = "", model: str = "") -> None:
    """Start a chat from the home page (with this persona and model, if given) and wait
    for its socket."""
    page.goto(f"{base_url}/")
    if persona:
        page.get_by_label("Persona").select_option(label=persona)
    if model:
        page.get_by_label("Model").select_option(label=model)
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    socket_open(page)


@dataclass
class BrowserSite:
    base_url: str
    simulator_url: str
    chromium: Any
    context: Any
    #: Signed in as "ada", the admin.
    page: Any


@contextmanager
def browser_site(
    tmp: Path, *, pace: float = 400, viewport: Any = None, **env: str
) -> Iterator[BrowserSite]:
    """One daphne and a simulator at ``pace`` tokens/s on a fresh database, and Chromium
    with a signed-in page (the page's CSP is bypassed so tests may wait on scripts)."""
    from playwright.sync_api import sync_playwright

    with (
        e2e_database(tmp) as database_url,
        simulator_process(pace, tmp / "simulator.log") as simulator_url,
    ):
        settings = server_env(database_url, DEMO_UPSTREAM_URL=simulator_url, **env)
        settings["DEMO_TOKENS_PER_SECOND"] = f"{pace:g}"
        migrate(settings)
        with daphne(settings, tmp / "daphne.log") as base_url, sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            try:
                options = {"viewport": viewport} if viewport else {}
                context = chromium.new_context(bypass_csp=True, **options)
                page = context.new_page()
                page.set_default_timeout(20_000)
                sign_up(page, base_url)
                yield BrowserSite(base_url, simulator_url, chromium, context, page)
            finally:
                chromium.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for ``localhost`` (its own CA), and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


#: For page.evaluate(WATCH_EXCHANGE, text): window.seen counts, after every change to
#: the messages, the provisional exchange and how many copies of ``text`` and of its
#: reply show (chat.provisional).
WATCH_EXCHANGE = """(text) => {
  // After every change: how many copies of the message and of its reply show.
  const visible = (el) => el.getClientRects().length > 0;
  const before = [...document.querySelectorAll(".message.assistant")].filter(visible).length;
  window.seen = {provisional: 0, maxMessages: 0, maxReplies: 0, composerWhenShown: null};
  new MutationObserver(() => {
    if (document.querySelector(".provisional")) {
      window.seen.provisional++;
      if (window.seen.composerWhenShown === null)
        window.seen.composerWhenShown = document.getElementById("composer-input").value;
    }
    const messages = [...document.querySelectorAll(".message.user")]
      .filter((el) => visible(el) && el.textContent.includes(text));
    const replies = [...document.querySelectorAll(".message.assistant")].filter(visible)
      .slice(before);
    window.seen.maxMessages = Math.max(window.seen.maxMessages, messages.length);
    window.seen.maxReplies = Math.max(window.seen.maxReplies, replies.length);
  }).observe(document.getElementById("messages"),
             {childList: true, subtree: true, characterData: true, attributes: true});
}"""
