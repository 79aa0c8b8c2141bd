"""Use cases. The consumer, views, management commands and tests all call these.

One module per use case, as Zulip's ``zerver/actions``:

- ``accounts``: sign-ups, with the first account decided under a lock, and the
  time zone an account keeps;
- ``conversations``: start one, change its settings, build the request it sends next;
- ``sending``: store a user's message and its empty reply, once per client id;
- ``replies``: the life of one reply in the process that writes it;
- ``early``: a reply's upstream request started while its message is stored;
- ``transfer``: export and import, one conversation or all;
- ``personas``: personas from character cards;
- ``recovery``: Stop and snapshots across processes, and taking over replies whose
  process died.

Sync functions run one change atomically and publish the events that follow from it
on commit.
"""

from __future__ import annotations

from chat.actions.accounts import set_time_zone, sign_up
from chat.actions.common import ActionError, database_turn, retry_db
from chat.actions.conversations import (
    PreparedRequest,
    create_conversation,
    delete_conversation,
    prepare_next_turn,
    prepare_request,
    rename_conversation,
    set_pinned,
    speaker_for,
    switch_branch,
    update_conversation_settings,
)
from chat.actions.early import EarlyStart, start_early
from chat.actions.personas import (
    ImportedPersona,
    delete_private_persona,
    import_card_file,
    import_character_card,
    private_persona,
    save_private_persona,
)
from chat.actions.recovery import (
    latest_reply_frames,
    request_reply_snapshot,
    request_snapshot,
    stop_reply,
    supervisor,
    take_over_reply,
    take_over_stale_replies,
)
from chat.actions.replies import (
    accepting_replies,
    finish_reply,
    shut_down,
    start_reply,
    stream_reply,
    wait_for_running_replies,
)
from chat.actions.sending import (
    MAX_MESSAGE_CHARS,
    SentMessage,
    edit_message,
    regenerate_reply,
    send_message,
)
from chat.actions.transfer import (
    ExportFile,
    export_all,
    export_conversation,
    import_conversations,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "ActionError",
    "database_turn",
    "EarlyStart",
    "ExportFile",
    "ImportedPersona",
    "PreparedRequest",
    "SentMessage",
    "accepting_replies",
    "create_conversation",
    "delete_conversation",
    "edit_message",
    "export_all",
    "export_conversation",
    "import_conversations",
    "finish_reply",
    "delete_private_persona",
    "import_card_file",
    "import_character_card",
    "private_persona",
    "save_private_persona",
    "latest_reply_frames",
    "prepare_next_turn",
    "prepare_request",
    "regenerate_reply",
    "rename_conversation",
    "request_reply_snapshot",
    "request_snapshot",
    "retry_db",
    "send_message",
    "set_pinned",
    "set_time_zone",
    "sign_up",
    "shut_down",
    "speaker_for",
    "start_early",
    "start_reply",
    "stop_reply",
    "stream_reply",
    "supervisor",
    "switch_branch",
    "take_over_reply",
    "take_over_stale_replies",
    "update_conversation_settings",
    "wait_for_running_replies",
]
