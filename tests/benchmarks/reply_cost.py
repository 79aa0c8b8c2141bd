"""What one streamed reply costs: database writes, socket frames, time to first token.

    make bench                      # a 500-token reply at 40 tokens/s, on a fresh SQLite file
    python -m tests.benchmarks.reply_cost --tokens 500 --pace 200

Set DATABASE_URL (an existing, disposable database) and REDIS_URL to measure on those.

It drives the same chat.actions the socket uses, against the loopback simulator, and
counts every SQL statement Django sends from any thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--pace", type=float, default=40.0, help="simulated tokens per second")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="parley-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings_test"
    os.environ["DEMO_TOKENS_PER_SECOND"] = str(args.pace)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    asyncio.run(run(args.tokens))


async def run(tokens: int) -> None:
    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer
    from django.db import connections
    from django.db.backends.signals import connection_created

    from chat import actions, events
    from chat.models import Message, User
    from providers.registry import demo_upstream_url
    from providers.simulator import background_simulator

    statements: Counter[str] = Counter()

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements[sql.lstrip().split(None, 1)[0].upper()] += 1
        if os.environ.get("BENCH_SQL"):
            print(sql[:150])
        return execute(sql, params, many, context)

    def install(sender, connection, **kwargs):  # type: ignore[no-untyped-def]
        # Fires on every reconnect of the same wrapper object: install once.
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    @database_sync_to_async
    def setup():  # type: ignore[no-untyped-def]
        user, _ = User.objects.get_or_create(username="bench", defaults={"is_approved": True})
        conversation = actions.create_conversation(
            user=user, persona_id=None, model_key="demo:MiniMax-M2.7"
        )
        connections.close_all()
        connection_created.connect(install)
        return user, conversation

    user, conversation = await setup()
    demo_upstream_url()

    # A first, short reply pays the one-off costs (imports, CA bundle, connections) that
    # a running server has long paid; it is reported apart and not counted below.
    warm_up = await database_sync_to_async(actions.send_message)(
        user=user, conversation_id=conversation.pk, text="Warm up."
    )
    await actions.stream_reply(reply_id=warm_up.reply_id)
    cold = await database_sync_to_async(Message.objects.get)(pk=warm_up.reply_id)
    statements.clear()
    background_simulator().queue_fault(f"length={tokens}")

    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(events.conversation_group(conversation.pk), listener)
    frames = 0

    async def drain() -> None:
        nonlocal frames
        while True:
            await layer.receive(listener)
            frames += 1

    drainer = asyncio.create_task(drain())
    started = time.perf_counter()
    sent = await database_sync_to_async(actions.send_message)(
        user=user, conversation_id=conversation.pk, text="Give me the long version, please."
    )
    status = await actions.stream_reply(reply_id=sent.reply_id, context=sent.context)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.2)
    drainer.cancel()
    reply = await database_sync_to_async(Message.objects.get)(pk=sent.reply_id)
    writes = sum(statements[k] for k in ("INSERT", "UPDATE", "DELETE"))
    print(f"reply status:              {status}")
    print(f"output tokens (upstream):  {reply.output_tokens}")
    print(f"reply length:              {len(reply.content)} + {len(reply.reasoning)} chars")
    print(f"wall time:                 {elapsed:.2f} s")
    print(
        f"time to first token:       {reply.time_to_first_token_ms} ms server side, warm "
        f"(first reply of the process: {cold.time_to_first_token_ms} ms); "
        f"the simulator waits {1000 / float(os.environ['DEMO_TOKENS_PER_SECOND']):.0f} ms "
        "before its first token"
    )
    print(f"socket frames published:   {frames}")
    print(
        f"database writes:           {writes} "
        f"(INSERT {statements['INSERT']}, UPDATE {statements['UPDATE']}, "
        f"DELETE {statements['DELETE']}); all statements: {sum(statements.values())}"
    )
    print(f"statement mix:             {dict(statements)}")


if __name__ == "__main__":
    main()
