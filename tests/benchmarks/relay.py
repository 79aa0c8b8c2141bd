"""How many concurrent streams one daphne process relays, and at what cost.

    make bench-relay
    python -m tests.benchmarks.relay --steps 10,50,100,150 --pace 50 --tokens 500
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        python -m tests.benchmarks.relay --processes 2 --steps 150,300
    python -m tests.benchmarks.relay --steps 50 --history 100000   # long conversations

The simulator runs in its own process at a set pace and records when it wrote each
chunk. Daphne serves Parley as in production (DEBUG off). N websocket clients, each a
signed-in user with a conversation of their own, send at once; three direct clients of
the same simulator start with them, as the baseline. For each step it prints:

- added time to first token: (send → the first words on the socket) − the direct
  clients' median time to first token, p50 and p99. The first words are the provisional
  reply's, shown while the send is stored (``chat.provisional``), or the stored reply's
  when nothing was shown early; the stored reply's first delta is its own column;
- per-token lag: when a frame arrived − when the simulator wrote the last character it
  carries, p50 and p99 over every frame that showed more of the answer (provisional or
  stored: the page shows the provisional reply until the stored one has caught up);
- the final frame (the reply rendered whole, as stored) after the simulator wrote the
  reply's last token, p50 and p99;
- daphne's CPU (all processes, % of one core) over the step;
- replies that never got their final frame, and the characters those sockets never
  showed (the final frame carries the whole reply);
- whether every stored reply equals what the simulator sent;
- the control: the time to first token of as many direct clients at once as the step
  sends, run just before the step without Parley in the way (what a burst costs the
  simulator and the box, which the relay cannot take away).
- the two legs of each send's first words that go through Parley, from the simulator's
  own timestamps: sent → the simulator had read its request, and the simulator wrote
  the first token → the first words were on the socket; the same two legs of the direct
  clients (their medians); and what the relay added on them (each send's two legs
  minus the direct ones), p50 and p99. Unlike the added TTFT, this leaves out the
  simulator's own time between reading a request and writing its first token, which
  grows with a burst (it is one Python process on the same cores) and which the three
  direct clients, sent first, mostly miss.

With DATABASE_URL set to PostgreSQL it creates a scratch database there (and drops it);
otherwise it uses a SQLite file. Two processes need REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from providers.simulator.transcript import first_token_at
from tests.live import ROOT, free_port, wait_for_port
from tests.streams import STREAMING_BODY, region_text

DELTA = re.compile(
    r'<div hx-swap-oob="beforeend:#m-(\d+)-(text|reasoning)" data-offset="(\d+)" '
    r'data-end="(\d+)">(.*?)</div>',
    re.S,
)
STREAMING = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')
PROVISIONAL = re.compile(
    r'beforeend:#p-[\w-]+-r-(text|reasoning)" data-offset="(\d+)" data-end="(\d+)"'
)


#: Direct clients started with each step's sends; their median time to first token is
#: the baseline. One alone ranged from 22 to 45 ms between runs of the same step, which
#: swamped what it was there to measure.
BASELINE_CLIENTS = 3


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _p50_p99(name: str, seconds: list[float]) -> dict[str, float]:
    """``{name}_p50`` and ``{name}_p99``, in ms."""
    return {
        f"{name}_p50": _percentile(seconds, 0.5) * 1000,
        f"{name}_p99": _percentile(seconds, 0.99) * 1000,
    }


@dataclass
class Stream:
    """One socket's view of one reply."""

    index: int
    marker: str
    sent_at: float = 0.0
    reply_id: int = 0
    #: The first words shown: provisional or stored.
    first_words_at: float | None = None
    first_delta_at: float | None = None
    final_at: float | None = None
    shown: str = ""
    #: How much of the answer the page showed, provisional or stored.
    visible_end: int = 0
    snapshots: int = 0
    #: (arrival, text end) of each frame that showed more of the answer.
    frames: list[tuple[float, int]] = field(default_factory=list)

    def showed(self, now: float, end: int) -> None:
        if end > self.visible_end:
            self.visible_end = end
            self.frames.append((now, end))


@dataclass
class Site:
    urls: list[str]
    cookies: list[str]
    conversations: list[int]
    pids: list[int]
    database_url: str


def prepare(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, str], str]:
    """A scratch database, migrated, with one signed-in user and conversation per stream."""
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith("postgres"):
        import psycopg

        name = f"parley_bench_{uuid.uuid4().hex[:8]}"
        admin = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    else:
        database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PARLEY_DEMO": "true",
        "DATABASE_URL": database_url,
        "DEMO_TOKENS_PER_SECOND": str(args.pace),
        "REPLY_FRAME_INTERVAL": str(args.frame_interval),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_PREFIX"] = f"parley-bench-{uuid.uuid4().hex[:6]}"
    elif args.processes > 1:
        raise SystemExit("Two processes need REDIS_URL")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    return env, database_url


def create_users(
    env: dict[str, str], count: int, *, history: int = 0, script: str = "latin"
) -> tuple[list[str], list[int]]:
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from chat.models import Conversation, User

    cookies, conversations = [], []
    for index in range(count):
        user = User.objects.create_user(username=f"bench{index}", is_approved=True)
        conversation = Conversation.objects.create(owner=user, model="demo:MiniMax-M2.7")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
        conversations.append(conversation.pk)
    if history:
        add_history(conversations, history, script=script)
    return cookies, conversations


def add_history(conversations: list[int], chars: int, *, script: str = "latin") -> None:
    """Earlier exchanges in every conversation, about ``chars`` characters in all: a
    question and a long answer each, one statement per turn for all conversations.
    ``script``: "latin" (plain ASCII) or "cjk" (Chinese, with ASCII code and numbers)."""
    from chat.models import Conversation, Message

    if script == "cjk":
        answer = (
            "这是一个更长的回答，包含一个列表和一些代码。\n\n"
            + "".join(f"{n}. 关于第 {n} 项的要点，用一两句话说明。\n" for n in range(30))
            + "\n```python\nprint('你好')\n```\n"
        )
        question = "你能更详细地解释下一部分吗？请举个例子。"
    else:
        answer = (
            "Here is a longer answer, with a list and some code.\n\n"
            + "".join(f"{n}. A point about item {n}, in a sentence or two.\n" for n in range(30))
            + "\n```python\nprint('hello')\n```\n"
        )
        question = "Could you explain the next part in more detail, with an example?"
    turns = max(1, chars // (len(question) + len(answer)))
    parents: dict[int, int | None] = dict.fromkeys(conversations)
    for turn in range(turns):
        for role, content in (("user", question), ("assistant", answer)):
            rows = Message.objects.bulk_create(
                Message(
                    conversation_id=pk,
                    parent_id=parents[pk],
                    role=role,
                    content=f"{content} ({turn})",
                    model="demo:MiniMax-M2.7" if role == "assistant" else "",
                )
                for pk in conversations
            )
            parents = {row.conversation_id: row.pk for row in rows}
    for pk, leaf in parents.items():
        Conversation.objects.filter(pk=pk).update(current_leaf_id=leaf, title="Earlier")


async def open_sockets(site: Site, count: int) -> list:  # type: ignore[type-arg]
    from websockets.asyncio.client import connect

    async def one(index: int):  # type: ignore[no-untyped-def]
        url = site.urls[index % len(site.urls)]
        return await connect(
            url.replace("http://", "ws://") + f"/ws/c/{site.conversations[index]}/",
            additional_headers={"Cookie": site.cookies[index], "Origin": url},
            max_size=2**20,
            open_timeout=60,
            ping_interval=None,
        )

    sockets = []
    for start in range(0, count, 25):  # handshakes in batches: not what is measured
        sockets += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 25))))
    await asyncio.sleep(0.5)
    for ws in sockets:  # drop catch-up frames
        while True:
            try:
                await asyncio.wait_for(ws.recv(), 0.01)
            except TimeoutError:
                break
    return sockets


async def follow(ws, stream: Stream, deadline: float) -> None:  # type: ignore[no-untyped-def]
    received = acknowledged = 0
    while time.time() < deadline:
        try:
            frame = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.time()))
        except TimeoutError:
            return
        now = time.time()
        received += len(frame)
        if received - acknowledged >= 8192:  # as the page does (static/chat/chat.js)
            acknowledged = received
            await ws.send(json.dumps({"action": "ack", "received": received}))
        for match in PROVISIONAL.finditer(frame):  # the first words, before the store
            if stream.first_words_at is None:
                stream.first_words_at = now
            if match[1] == "text":
                stream.showed(now, int(match[3]))
        if not stream.reply_id:
            found = STREAMING.search(frame)
            if found:
                stream.reply_id = int(found[1])
            continue
        if f'id="m-{stream.reply_id}"' in frame and 'data-status="streaming"' not in frame:
            stream.final_at = now
            return
        for match in STREAMING_BODY.finditer(frame):  # a snapshot: the socket fell behind
            if match["target"] == f"m-{stream.reply_id}-text":
                stream.shown = region_text(match["text"])
                stream.snapshots += 1
                stream.showed(now, int(match["end"]))
        for match in DELTA.finditer(frame):
            if int(match[1]) != stream.reply_id:
                continue
            if stream.first_delta_at is None:
                stream.first_delta_at = now
                if stream.first_words_at is None:
                    stream.first_words_at = now
            if match[2] == "text":
                offset, end = int(match[3]), int(match[4])
                if offset == len(stream.shown):
                    stream.shown += html.unescape(match[5])
                    stream.showed(now, end)


@dataclass
class Direct:
    """One direct client's request: when it was sent, and its first token read."""

    marker: str
    sent_at: float
    ttft: float  # seconds; nan without a first token
    first_at: float | None


async def direct_baseline(
    sim_url: str, pace: float, tokens: int, marker: str = "baseline"
) -> Direct:
    """A direct client of the same simulator, to its first token."""
    from providers.clients.minimax_openai import MiniMaxOpenAIClient
    from providers.clients.types import ChatMessage, ChatRequest, ReasoningDelta, TextDelta

    client = MiniMaxOpenAIClient(
        base_url=f"{sim_url}/minimax/v1",
        api_key="bench",
        extra_headers={"x-simulator-pace": str(pace), "x-simulator-length": str(tokens)},
    )
    request = ChatRequest(
        model="MiniMax-M2.7", messages=(ChatMessage(role="user", content=marker),)
    )
    sent_at, started = time.time(), time.monotonic()
    first = first_at = None
    stream = client.stream(request)
    async for event in stream:
        if isinstance(event, (TextDelta, ReasoningDelta)) and first is None:
            first, first_at = time.monotonic() - started, time.time()
            break
    await stream.aclose()  # type: ignore[attr-defined]
    return Direct(marker, sent_at, first if first is not None else float("nan"), first_at)


def emitted_text(summary: dict) -> tuple[str, list[tuple[int, float]]]:  # type: ignore[type-arg]
    """The answer text the simulator wrote and when each prefix length was complete."""
    from providers.simulator.transcript import answer_deltas

    text, marks = "", []
    for at, content in answer_deltas(summary["sent"]):
        text += content
        marks.append((len(text), at))
    return text, marks


def _legs(
    summary: dict | None,  # type: ignore[type-arg]
    sent_at: float,
    first_at: float | None,
) -> tuple[float, float] | None:
    """(sent → the simulator had read the request, the simulator wrote the first token
    → it was read), in seconds: the time on either side of the upstream's own."""
    if summary is None or first_at is None:
        return None
    written = first_token_at(summary["sent"])
    if written is None:
        return None
    return summary["received_at"] - sent_at, first_at - written


def stored_replies(database_url: str, ids: list[int]) -> dict[int, str]:
    query = "SELECT id, content FROM chat_message WHERE id IN ({})"
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(query.format(",".join("?" * len(ids))), ids).fetchall()
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            rows = conn.execute(query.format(",".join(["%s"] * len(ids))), ids).fetchall()
    return dict(rows)


async def run_step(site: Site, sim_url: str, count: int, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    import httpx

    sockets = await open_sockets(site, count)
    step = uuid.uuid4().hex[:6]
    streams = [Stream(index=i, marker=f"bench {step} {i}") for i in range(count)]
    duration = args.tokens / args.pace
    deadline = time.time() + duration * 3 + 60
    followers = [
        asyncio.create_task(follow(ws, stream, deadline))
        for ws, stream in zip(sockets, streams, strict=True)
    ]
    # The control: as many direct clients of the simulator at once as the step sends,
    # without Parley. What a burst costs the simulator and this box, not the relay.
    burst = [
        direct.ttft
        for direct in await asyncio.gather(
            *(direct_baseline(sim_url, args.pace, args.tokens) for _ in range(count))
        )
    ]
    await asyncio.sleep(0.5)
    cpu_before = [_cpu_seconds(pid) for pid in site.pids]
    wall_before = time.monotonic()
    baseline = asyncio.gather(
        *(
            direct_baseline(sim_url, args.pace, args.tokens, f"baseline {step} {i}")
            for i in range(BASELINE_CLIENTS)
        )
    )

    async def send(ws, stream: Stream) -> None:  # type: ignore[no-untyped-def]
        stream.sent_at = time.time()
        await ws.send(
            json.dumps(
                {
                    "action": "send",
                    "message": stream.marker,
                    "client_id": stream.marker.replace(" ", "-"),
                }
            )
        )

    await asyncio.gather(*(send(ws, s) for ws, s in zip(sockets, streams, strict=True)))
    directs = await baseline
    direct_ttft = _percentile([direct.ttft for direct in directs], 0.5)
    await asyncio.gather(*followers)
    cpu = sum(_cpu_seconds(pid) for pid in site.pids) - sum(cpu_before)
    wall = time.monotonic() - wall_before
    await asyncio.gather(*(ws.close() for ws in sockets))

    async with httpx.AsyncClient() as client:
        summaries = (await client.get(f"{sim_url}/_records", timeout=60)).json()
    by_marker = {s["last_message"]: s for s in summaries}
    stored = stored_replies(site.database_url, [s.reply_id for s in streams if s.reply_id])

    # The legs a direct client has too: its request reaching the simulator, and the
    # simulator's first token reaching it.
    direct_legs = [
        legs
        for direct in directs
        if (legs := _legs(by_marker.get(direct.marker), direct.sent_at, direct.first_at))
    ]
    direct_in = _percentile([legs[0] for legs in direct_legs], 0.5)
    direct_out = _percentile([legs[1] for legs in direct_legs], 0.5)
    relay_in, relay_out, relay_added = [], [], []
    added_ttft, stored_ttft, lags, final_delays = [], [], [], []
    missing = no_final = mismatched = 0
    timeline: list[tuple[float, float]] = []  # (seconds since the first send, lag)
    first_send = min(stream.sent_at for stream in streams)
    for stream in streams:
        if stream.first_words_at is not None:
            added_ttft.append((stream.first_words_at - stream.sent_at) - direct_ttft)
        legs = _legs(by_marker.get(stream.marker), stream.sent_at, stream.first_words_at)
        if legs:
            relay_in.append(legs[0])
            relay_out.append(legs[1])
            relay_added.append(legs[0] - direct_in + legs[1] - direct_out)
        if stream.first_delta_at is not None:
            stored_ttft.append((stream.first_delta_at - stream.sent_at) - direct_ttft)
        if stream.final_at is None:
            no_final += 1
        sent_text, marks = emitted_text(by_marker.get(stream.marker, {"sent": []}))
        if stream.final_at is not None and marks:
            final_delays.append(stream.final_at - marks[-1][1])
        final_text = stored.get(stream.reply_id, "")
        if final_text != sent_text:
            mismatched += 1
        if stream.final_at is None:  # the final frame carries the whole reply
            missing += max(0, len(final_text) - len(stream.shown))
        position = 0
        for arrived, end in stream.frames:
            while position < len(marks) and marks[position][0] < end:
                position += 1
            if position < len(marks):
                lags.append(arrived - marks[position][1])
                timeline.append((arrived - first_send, arrived - marks[position][1]))
    return {
        "streams": count,
        **_p50_p99("ttft", added_ttft),
        **_p50_p99("legs", relay_added),
        **_p50_p99("in", relay_in),
        **_p50_p99("out", relay_out),
        "direct_in": direct_in * 1000,
        "direct_out": direct_out * 1000,
        **_p50_p99("stored_ttft", stored_ttft),
        **_p50_p99("lag", lags),
        **_p50_p99("final", final_delays),
        "cpu": 100 * cpu / wall,
        "missing": missing,
        "no_final": no_final,
        "mismatched": mismatched,
        "snapshots": sum(stream.snapshots for stream in streams),
        "direct_ttft": direct_ttft * 1000,
        "burst_ttft": _percentile(list(burst), 0.5) * 1000,
        "timeline": timeline,
        "client_ids": [stream.marker.replace(" ", "-") for stream in streams],
    }


def print_row(result: dict, *, label: str = "") -> None:  # type: ignore[type-arg]
    print(
        f"| {label}{result['streams']} | {result['ttft_p50']:.0f} / {result['ttft_p99']:.0f} "
        f"| {result['stored_ttft_p50']:.0f} / {result['stored_ttft_p99']:.0f} "
        f"| {result['lag_p50']:.0f} / {result['lag_p99']:.0f} "
        f"| {result['final_p50']:.0f} / {result['final_p99']:.0f} | {result['cpu']:.0f} % "
        f"| {result['missing']} | {result['no_final']} | {result['mismatched']} "
        f"| {result['snapshots']} | {result['direct_ttft']:.0f} | {result['burst_ttft']:.0f} "
        f"| {result['in_p50']:.1f} / {result['in_p99']:.1f} "
        f"| {result['out_p50']:.1f} / {result['out_p99']:.1f} "
        f"| {result['direct_in']:.1f} / {result['direct_out']:.1f} "
        f"| {result['legs_p50']:.1f} / {result['legs_p99']:.1f} |",
        flush=True,
    )


def median_of(runs: list[dict]) -> dict:  # type: ignore[type-arg]
    """Each figure's median over the runs of a step; losses are added up, not averaged."""
    added = ("missing", "no_final", "mismatched", "snapshots")
    return {
        key: sum(run[key] for run in runs)
        if key in added
        else sorted(run[key] for run in runs)[len(runs) // 2]
        for key in runs[0]
        if key not in ("timeline", "client_ids")
    }


def print_timeline(timeline: list[tuple[float, float]]) -> None:
    """Per-token lag second by second: where in a step the late frames were."""
    seconds: dict[int, list[float]] = {}
    for at, lag in timeline:
        seconds.setdefault(int(at), []).append(lag)
    print("  second: frames, lag p50 / p99 (ms)")
    for second, lags in sorted(seconds.items()):
        print(
            f"  {second:>4}: {len(lags):>5}, {_percentile(lags, 0.5) * 1000:.0f} / "
            f"{_percentile(lags, 0.99) * 1000:.0f}"
        )


#: The marks ``tests/benchmarks/trace/sitecustomize.py`` leaves, in a send's order.
TRACE_MARKS = (
    ("onmsg", "reaches daphne (autobahn's onMessage)"),
    ("recv", "reaches the consumer's receive"),
    ("early", "its early request's task starts"),
    ("event", "its first event reaches the provisional reply"),
    ("frame", "its first frame with words is built"),
)


def print_trace(trace_dir: Path, client_ids: list[str]) -> None:
    """Each mark's p50 / p99 over the step's sends, in ms from the first ``onmsg``;
    then what daphne's event loop ran until the median early request started, and
    until the last first words."""
    time.sleep(1.5)  # the traced processes write their marks every half second
    wanted = set(client_ids)
    seen: dict[str, dict[str, float]] = {}
    for path in trace_dir.glob("marks-*.jsonl"):
        for line in path.read_text().splitlines():
            at, kind, key = json.loads(line)
            if key in wanted:
                seen.setdefault(key, {}).setdefault(kind, at)
    starts = [marks["onmsg"] for marks in seen.values() if "onmsg" in marks]
    if not starts:
        print("  (no traced sends)")
        return
    first = min(starts)
    print(f"  the send… (of {len(wanted)}; ms after the first reached daphne, p50 / p99, sends)")
    for kind, label in TRACE_MARKS:
        times = [(marks[kind] - first) * 1000 for marks in seen.values() if kind in marks]
        print(
            f"  {label}: {_percentile(times, 0.5):.1f} / {_percentile(times, 0.99):.1f}, "
            f"{len(times)}"
        )
    loops = []  # each daphne process's callbacks
    for path in sorted(trace_dir.glob("loop-*.jsonl")):
        loops.append([json.loads(line) for line in path.read_text().splitlines()])
        path.unlink()  # the next step reads only its own
    early = [marks["early"] for marks in seen.values() if "early" in marks]
    frames = [marks["frame"] for marks in seen.values() if "frame" in marks]
    for index, ran in enumerate(loops, 1):
        loop = "the event loop" + (f" of daphne {index}" if len(loops) > 1 else "")
        if early:
            median = _percentile(early, 0.5)
            print_loop_time(ran, first, median, f"{loop}, to the median early request")
        if frames:
            print_loop_time(ran, first, max(frames), f"{loop}, to the last first words")


def print_loop_time(
    ran: list[tuple[float, float, str]], start: float, end: float, span: str, *, most: int = 8
) -> None:
    """What one event loop ran between ``start`` and ``end`` (each callback counted for
    the part of it inside that span): the busy share, and the callbacks that took the
    most of it."""
    totals: dict[str, list[float]] = {}
    busy = 0.0
    for at, took, what in ran:
        inside = min(at + took, end) - max(at, start)
        if inside > 0:
            busy += inside
            entry = totals.setdefault(what, [0, 0.0])
            entry[0] += 1
            entry[1] += inside
    window = (end - start) * 1000
    print(f"  {span} ({window:.1f} ms): busy {busy * 1000:.1f} ms")
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])
    for what, (count, took) in ranked[:most]:
        print(f"    {took * 1000:6.1f} ms in {count:4} runs of {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="10,50,100,150")
    parser.add_argument("--pace", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--frame-interval", type=float, default=0.05)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument(
        "--upstream-ttft",
        type=float,
        default=0.0,
        help="seconds the simulator waits before each first token, as a real model does",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each step this many times, then print each figure's median",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="characters of earlier exchanges in every conversation before the first send",
    )
    parser.add_argument(
        "--history-script",
        choices=("latin", "cjk"),
        default="latin",
        help="the earlier exchanges' script: plain ASCII, or Chinese",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="after each step, its per-token lag second by second",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="after each step, when its sends reached each stage in daphne "
        "(tests/benchmarks/trace; it costs the burst a little)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if any socket missed text or any stored reply differs (a smoke run)",
    )
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="parley-relay-"))
    env, database_url = prepare(args, tmp)
    cookies, conversations = create_users(
        env, max(steps), history=args.history, script=args.history_script
    )

    sim_port = free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.simulator",
            "--port",
            str(sim_port),
            "--pace",
            str(args.pace),
            "--first-token-delay",
            str(args.upstream_ttft),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(sim_port, simulator)
    sim_url = f"http://127.0.0.1:{sim_port}"
    env["DEMO_UPSTREAM_URL"] = sim_url
    trace_dir = tmp / "trace"
    trace_env: dict[str, str] = {}
    if args.trace:
        trace_dir.mkdir()
        path = [str(Path(__file__).parent / "trace"), env.get("PYTHONPATH", "")]
        trace_env = {"PARLEY_TRACE_DIR": str(trace_dir), "PYTHONPATH": os.pathsep.join(path)}
    servers = []
    for index in range(args.processes):
        port = free_port()
        log = (tmp / f"daphne-{index}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "project.asgi:application",
            ],
            cwd=ROOT,
            env={**env, "DEMO_REPLY_TOKENS": str(args.tokens), **trace_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port, process)
        servers.append((process, port))
    site = Site(
        urls=[f"http://127.0.0.1:{port}" for _, port in servers],
        cookies=cookies,
        conversations=conversations,
        pids=[process.pid for process, _ in servers],
        database_url=database_url,
    )
    backend = ("PostgreSQL" if database_url.startswith("postgres") else "SQLite") + (
        " + Redis" if env.get("REDIS_URL") else " + in-memory layer"
    )
    print(
        f"{backend}, {args.processes} daphne process(es), {args.tokens} tokens at "
        f"{args.pace:g} tok/s, first token after {args.upstream_ttft * 1000:g} ms, "
        f"frames every {args.frame_interval * 1000:g} ms, {os.cpu_count()} cores"
        + (
            f", {args.history:,} characters of {args.history_script} history per conversation"
            if args.history
            else ""
        )
    )
    print(
        "| streams | added TTFT p50 / p99 (ms) | stored reply's first delta p50 / p99 (ms) "
        "| per-token lag p50 / p99 (ms) | final frame after the last token p50 / p99 (ms) "
        "| daphne CPU "
        "| chars missing | no final frame | stored ≠ sent | snapshots | direct TTFT (ms) "
        "| direct TTFT, N at once, p50 (ms) "
        "| send → the upstream has the request p50 / p99 (ms) "
        "| the upstream wrote the first token → on the socket p50 / p99 (ms) "
        "| the same two legs, direct (ms) | added on those legs p50 / p99 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lost = 0
    try:
        for count in steps:
            runs = []
            for _ in range(args.repeat):
                result = asyncio.run(run_step(site, sim_url, count, args))
                runs.append(result)
                print_row(result, label="" if args.repeat == 1 else f"run {len(runs)}: ")
                if args.timeline:
                    print_timeline(result["timeline"])
                if args.trace:
                    print_trace(trace_dir, result["client_ids"])
                lost += result["missing"] + result["no_final"] + result["mismatched"]
            if args.repeat > 1:
                print_row(median_of(runs), label="median: ")
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=60)
        simulator.terminate()
        simulator.wait()
        if database_url.startswith("postgres"):
            import psycopg

            admin = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    f'DROP DATABASE IF EXISTS "{urlsplit(database_url).path[1:]}" WITH (FORCE)'
                )
    if args.check and lost:
        raise SystemExit(f"Lost or mismatched text in {lost} places")


if __name__ == "__main__":
    main()
