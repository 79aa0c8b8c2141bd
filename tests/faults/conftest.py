"""The fault suite's rig: real daphne processes, private services, real sockets.

Each test runs Parley as an operator would (daphne, PostgreSQL, Redis) against the
in-process simulator, injects one fault, and checks what a person and the database
see afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.simulator.transcript import answer_deltas
from tests.conftest import CI
from tests.faults.services import PostgresServer, RedisServer, postgres_bin, redis_bin
from tests.live import ROOT, free_port, server_env, spawn_daphne, wait_for_port
from tests.streams import Transcript, is_final

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = []
    if postgres_bin() is None:
        missing.append("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    if redis_bin() is None:
        missing.append("redis-server is not installed")
    if not missing:
        return
    if CI:
        raise pytest.UsageError("CI=true but " + "; ".join(missing))
    skip = pytest.mark.skip(reason="; ".join(missing))
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: that is private to root, and postgres must run as
    # its own user.
    directory = Path(tempfile.mkdtemp(prefix="parley-faults-pg-"))
    directory.chmod(0o755)
    server = PostgresServer(directory / "cluster")
    server.init()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Daphne:
    """One daphne process; stop it politely (SIGTERM) or not (SIGKILL)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.process = spawn_daphne(env, self.port, self._out)
        try:
            wait_for_port(self.port, self.process, timeout=30)
        except RuntimeError as error:
            raise RuntimeError(f"{error}: {self.output()}") from None

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"daphne did not exit {timeout} s after SIGTERM\n"
                f"{self.stacks()}\n--- its log ---\n{self.output()[-6000:]}"
            ) from None

    def stacks(self) -> str:
        """What every thread of the running process is doing, when py-spy is installed
        (it is not a dependency): the first thing to want when a shutdown hangs. Stacks
        only: locals may hold keys and session ids, and this lands in CI's log."""
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if py_spy is None:
            return "(install py-spy for the stacks of the hung process)"
        dump = subprocess.run(
            [py_spy, "dump", "--pid", str(self.process.pid)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return dump.stdout + dump.stderr

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._out.close()


#: What static/chat/chat.js acknowledges after (characters).
ACK_EVERY = 8192


@dataclass
class Socket:
    """A browser-like websocket: frames applied to a transcript as they arrive."""

    connection: Any
    transcript: Transcript = field(default_factory=Transcript)
    closed_with: int | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        received = acknowledged = 0
        try:
            async for frame in self.connection:
                self.transcript.apply(frame)
                self._arrived.set()
                # Acknowledge what arrived, as the page does (flow control).
                received += len(frame)
                if received - acknowledged >= ACK_EVERY:
                    acknowledged = received
                    await self.connection.send(json.dumps({"action": "ack", "received": received}))
        except ConnectionClosed as closed:
            self.closed_with = closed.rcvd.code if closed.rcvd else 1006
        else:
            self.closed_with = self.connection.close_code
        self._arrived.set()

    async def send(self, text: str, client_id: str = "") -> str:
        client_id = client_id or uuid.uuid4().hex
        payload = {"action": "send", "message": text, "client_id": client_id}
        await self.connection.send(json.dumps(payload))
        return client_id

    async def stop(self) -> None:
        await self.connection.send(json.dumps({"action": "stop"}))

    async def wait_for(self, predicate, within: float = 20.0) -> str:  # type: ignore[no-untyped-def]
        """Wait until a frame received so far satisfies ``predicate``; return it."""
        async with asyncio.timeout(within):
            while True:
                for frame in self.transcript.frames:
                    if predicate(frame):
                        return frame
                if self.closed_with is not None:
                    raise AssertionError(f"socket closed with {self.closed_with}")
                self._arrived.clear()
                await self._arrived.wait()

    async def reply_id(self, *, after: int = 0, within: float = 20.0) -> int:
        """The id of the first streaming reply newer than ``after``."""

        def newer(frame: str) -> bool:
            return any(int(found) > after for found in REPLY_ID.findall(frame))

        frame = await self.wait_for(newer, within)
        return max(int(found) for found in REPLY_ID.findall(frame))

    async def final(self, reply_id: int, within: float = 30.0) -> str:
        return await self.wait_for(is_final(reply_id), within)

    async def close(self) -> None:
        await self.connection.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class Site:
    """Parley served by one or more daphne processes sharing a database and Redis."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.servers: list[Daphne] = []
        self.cookie = ""
        self.sockets: list[Socket] = []

    def serve(self, **extra: str) -> Daphne:
        env = {**self.env, **extra}
        server = Daphne(env, self.tmp_path / f"daphne-{len(self.servers)}.log")
        self.servers.append(server)
        return server

    async def one_chat(self, **extra: str) -> tuple[Daphne, int, Socket]:
        """One server, the first (admin) account, a conversation and a socket on it."""
        server = self.serve(**extra)
        self.sign_up(server.url)
        conversation = self.new_conversation(server.url)
        return server, conversation, await self.socket(server.url, conversation)

    def sign_up(self, base_url: str) -> None:
        with httpx.Client(base_url=base_url, follow_redirects=True) as client:
            page = client.get("/signup/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            client.post(
                "/signup/",
                data={
                    "csrfmiddlewaretoken": token,
                    "username": "ada",
                    "password1": "a-long-passphrase-9",
                    "password2": "a-long-passphrase-9",
                },
            ).raise_for_status()
            self.cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    def new_conversation(self, base_url: str, model: str = "demo:MiniMax-M2.7") -> int:
        with httpx.Client(base_url=base_url, headers={"Cookie": self.cookie}) as client:
            page = client.get("/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            response = client.post(
                "/c/new/", data={"csrfmiddlewaretoken": token, "persona": "", "model": model}
            )
            assert response.status_code == 302, response.text[:500]
            return int(re.search(r"/c/(\d+)/", response.headers["location"])[1])

    def get(self, base_url: str, path: str) -> httpx.Response:
        # Generous: a 3 MB message renders in about 2 s alone, longer on a busy box.
        cookie = {"Cookie": self.cookie}
        with httpx.Client(base_url=base_url, headers=cookie, timeout=60) as client:
            return client.get(path)

    async def socket(self, base_url: str, conversation_id: int, *, drain: float = 0.3) -> Socket:
        from websockets.asyncio.client import connect

        connection = await connect(
            base_url.replace("http://", "ws://") + f"/ws/c/{conversation_id}/",
            additional_headers={"Cookie": self.cookie, "Origin": base_url},
            max_size=2**20,  # what daphne and most proxies allow: 1 MiB a message
            open_timeout=10,
        )
        socket = Socket(connection)
        socket.start()
        self.sockets.append(socket)
        if drain:
            await asyncio.sleep(drain)  # let the catch-up frames arrive
        return socket

    def row(self, message_id: int) -> dict[str, Any]:
        database_url = self.env["DATABASE_URL"]
        query = (
            "SELECT status, content, reasoning, error, taken_over FROM chat_message WHERE id = %s"
        )
        if database_url.startswith("sqlite"):
            with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
                found = conn.execute(query.replace("%s", "?"), (message_id,)).fetchone()
        else:
            import psycopg

            with psycopg.connect(database_url) as conn:
                found = conn.execute(query, (message_id,)).fetchone()
        assert found is not None, f"no message {message_id}"
        return dict(
            zip(("status", "content", "reasoning", "error", "taken_over"), found, strict=True)
        )

    def streaming_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(
                "SELECT count(*) FROM chat_message WHERE status = 'streaming'"
            ).fetchone()[0]

    def logs(self) -> str:
        return "\n".join(server.output() for server in self.servers)

    async def aclose(self) -> None:
        for socket in self.sockets:
            await socket.close()
        for server in self.servers:
            server.close()


@pytest.fixture
async def site_factory(postgres, simulator, tmp_path):  # type: ignore[no-untyped-def]
    """``make(redis=..., **env)``: a fresh database on the private PostgreSQL, migrated."""
    sites: list[Site] = []

    def make(*, redis: RedisServer | None = None, **extra: str) -> Site:
        database_url = postgres.create_database(f"parley_faults_{uuid.uuid4().hex[:8]}")
        env = server_env(database_url, DEMO_UPSTREAM_URL=simulator.base_url, **extra)
        env.pop("REDIS_URL", None)
        if redis is not None:
            env["REDIS_URL"] = redis.url
            env["REDIS_PREFIX"] = f"parley-faults-{uuid.uuid4().hex[:6]}"
        env["LOG_LEVEL"] = "INFO"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        site = Site(env, tmp_path)
        sites.append(site)
        return site

    yield make
    for site in sites:
        await site.aclose()


def request_for(simulator: Any, last_message: str) -> Any:
    """The newest upstream request whose last message starts with ``last_message``."""
    for record in reversed(simulator.requests):
        messages = record.body.get("messages") if isinstance(record.body, dict) else None
        if messages and str(messages[-1].get("content", "")).startswith(last_message):
            return record
    raise AssertionError(f"no upstream request ends with {last_message!r}")


def upstream_text(record: Any, *, before: float | None = None) -> str:
    """The answer text the simulator sent on one OpenAI-style stream, as sent; only
    what it wrote before the wall-clock time ``before``, if given."""
    deltas = answer_deltas(zip(record.sent_at, record.sent, strict=True))
    return "".join(text for at, text in deltas if before is None or at < before)


def disconnected_at(record: Any) -> float:
    """When the simulator saw the client close this request's connection, on the
    wall clock that ``sent_at`` uses (the simulator runs in this process)."""
    assert record.disconnected_at is not None, "the client never closed the connection"
    return time.time() - (time.monotonic() - record.disconnected_at)


def assert_clean_logs(site: Site) -> None:
    logs = site.logs()
    assert "Task exception was never retrieved" not in logs, logs[-4000:]
    assert "Something went wrong while writing this reply" not in logs
