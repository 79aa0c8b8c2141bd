"""What a long conversation costs to open: server time and HTML size.

    make bench-long-chat                         # 2,000 messages, on a fresh SQLite file
    python -m tests.benchmarks.long_chat --messages 2000 --versions 3

Set DATABASE_URL (an existing, disposable database) to measure on PostgreSQL.

It builds one conversation of ``--messages`` messages (markdown with code, as models
write), with ``--versions`` regenerated versions of every tenth reply, then times the
conversation page (median of ``--repeat`` requests through Django's test client, server
time only), one "load earlier messages" page, and a branch switch, and prints the size
of each response.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

REPLY = (
    "Here is how the ship's log is kept.\n\n"
    "1. **Record** the heading every watch.\n"
    "2. Note the weather.\n\n"
    "```python\nlog.append({'watch': {n}, 'heading': 270})\n```\n\n"
    "> Keep it short; the captain reads it at dawn.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="parley-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings_test"

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from chat import actions
    from chat.models import Conversation, Message, User

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(username=f"bench-{time.time_ns()}", is_approved=True)
    conversation = Conversation.objects.create(owner=user, model="demo:MiniMax-M2.7")
    parent = None
    started = time.perf_counter()
    for index in range(args.messages // 2):
        question = Message.objects.create(
            conversation=conversation, parent=parent, role="user", content=f"Turn {index}?"
        )
        versions = args.versions if index % 10 == 0 else 1
        for _ in range(versions):
            parent = Message.objects.create(
                conversation=conversation,
                parent=question,
                role="assistant",
                content=REPLY.replace("{n}", str(index)),
                output_tokens=60,
            )
    conversation.current_leaf = parent
    conversation.save()
    total = Message.objects.filter(conversation=conversation).count()
    elapsed = time.perf_counter() - started
    print(f"built {total} messages ({args.messages} on the branch) in {elapsed:.1f} s")

    client = Client()
    client.force_login(user)
    url = f"/c/{conversation.pk}/"

    def timed(path: str) -> tuple[float, int, int]:
        times, size, queries = [], 0, 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
            size, queries = len(response.content), len(captured)
        return statistics.median(times), size, queries

    page_ms, page_bytes, page_queries = timed(url)
    html = client.get(url).content.decode()
    marker = 'hx-get="/c/'
    start = html.index(marker, html.index('class="older-messages"'))
    older_url = html[start + len('hx-get="') : html.index('"', start + len(marker))]
    older_ms, older_bytes, older_queries = timed(older_url.replace("&amp;", "&"))
    # Back and forth between two versions of a reply; the median of --repeat switches.
    versioned = Message.objects.filter(conversation=conversation, role="assistant").first()
    versions = list(
        Message.objects.filter(parent_id=versioned.parent_id).values_list("pk", flat=True)
    )
    switches = []
    for index in range(args.repeat):
        began = time.perf_counter()
        actions.switch_branch(
            user=user,
            conversation_id=conversation.pk,
            message_id=versions[index % len(versions)],
        )
        switches.append((time.perf_counter() - began) * 1000)
    switch_ms = statistics.median(switches)

    print(f"{'':32} {'server ms (median)':>18} {'HTML':>10} {'queries':>8}")
    for name, ms, size, queries in (
        ("open the conversation", page_ms, page_bytes, page_queries),
        ("load earlier messages", older_ms, older_bytes, older_queries),
    ):
        print(f"{name:32} {ms:>18.1f} {size / 1024:>8.0f} KiB {queries:>8}")
    print(f"{'switch versions':32} {switch_ms:>18.1f}")


if __name__ == "__main__":
    main()
