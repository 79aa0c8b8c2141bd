"""A conversation is a tree of messages. Regenerating a reply or editing a message adds
a sibling (another version) instead of replacing it; the conversation remembers which
leaf is current, and what is shown and sent upstream is the path from the root to it.

Reading a branch costs two queries whatever the tree's size: the shape (ids and
parents), then the messages on the path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from chat.models import Conversation, Message


@dataclass(frozen=True, slots=True)
class Versions:
    """Where a message stands among its siblings: version ``index`` of ``count``."""

    index: int = 1
    count: int = 1
    previous_id: int | None = None
    next_id: int | None = None


class Shape:
    """The tree's ids and parents, without the messages' text."""

    def __init__(self, rows: list[tuple[int, int | None, str]]) -> None:
        self.parent: dict[int, int | None] = {pk: parent for pk, parent, _ in rows}
        self.children: dict[int | None, list[int]] = defaultdict(list)
        for pk, parent, _ in sorted(rows):
            self.children[parent].append(pk)
        #: A reply being written anywhere in the tree (it blocks sends and switches).
        self.streaming = any(status == Message.Status.STREAMING for _, _, status in rows)

    @classmethod
    def of(cls, conversation: Conversation) -> Shape:
        return cls(list(conversation.messages.values_list("pk", "parent_id", "status")))

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.parent

    def path_ids(self, leaf_id: int | None) -> list[int]:
        """Root first, down to ``leaf_id``; the newest leaf's path if it is unknown."""
        if leaf_id not in self.parent:
            leaf_id = self.latest_leaf(None)
        path: list[int] = []
        while leaf_id is not None:
            path.append(leaf_id)
            leaf_id = self.parent[leaf_id]
        path.reverse()
        return path

    def latest_leaf(self, message_id: int | None) -> int | None:
        """Following the newest child from ``message_id`` (None: the roots) down."""
        current = message_id
        while self.children.get(current):
            current = self.children[current][-1]
        return current

    def versions(self, message_id: int) -> Versions:
        siblings = self.children[self.parent[message_id]]
        if len(siblings) < 2:
            return Versions()
        index = siblings.index(message_id)
        return Versions(
            index=index + 1,
            count=len(siblings),
            previous_id=siblings[index - 1] if index > 0 else None,
            next_id=siblings[index + 1] if index + 1 < len(siblings) else None,
        )


def current_path(conversation: Conversation, shape: Shape | None = None) -> list[Message]:
    """The messages of the current branch, root first."""
    shape = shape or Shape.of(conversation)
    ids = shape.path_ids(conversation.current_leaf_id)
    found = Message.objects.in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


#: How many messages of a branch a page shows at first; older ones load on scroll.
PAGE_MESSAGES = 40


@dataclass(frozen=True, slots=True)
class BranchPage:
    messages: list[Message]
    #: The first message shown has older ones above it.
    has_older: bool


def branch_page(
    conversation: Conversation,
    shape: Shape | None = None,
    *,
    before: int | None = None,
    limit: int = PAGE_MESSAGES,
) -> BranchPage:
    """The newest ``limit`` messages of the current branch (older than ``before`` when
    given): what a page shows, whatever the length of the conversation."""
    shape = shape or Shape.of(conversation)
    ids = shape.path_ids(conversation.current_leaf_id)
    if before is not None:
        ids = ids[: ids.index(before)] if before in ids else []
    shown = ids[-limit:]
    found = Message.objects.in_bulk(shown)
    return BranchPage([found[pk] for pk in shown if pk in found], has_older=len(ids) > limit)


def path_to(
    conversation: Conversation, message_id: int | None, shape: Shape | None = None
) -> list[Message]:
    """The messages from the root down to ``message_id`` included (None: nothing)."""
    shape = shape or Shape.of(conversation)
    ids = shape.path_ids(message_id) if message_id in shape else []
    found = Message.objects.in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def versions_of(message: Message) -> Versions:
    """One message's place among its siblings, in one query."""
    siblings = Message.objects.filter(
        conversation_id=message.conversation_id, parent_id=message.parent_id
    ).values_list("pk", "parent_id", "status")
    return Shape(list(siblings)).versions(message.pk)


def append(conversation: Conversation, **fields: object) -> Message:
    """A message at the end of the current branch, which it then ends (for imports,
    fixtures and tools; sending goes through ``chat.actions``)."""
    message = Message.objects.create(
        conversation=conversation, parent_id=conversation.current_leaf_id, **fields
    )
    conversation.current_leaf = message
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message)
    return message
