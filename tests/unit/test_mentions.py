"""Who a reply mentions, and which delivery carries it: pure rules, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notifier.api.imagewatch_command import Add, BadCommand, parse
from notifier.core.events import COMPLETED, FAILED_EVENT, STALLED, STATE_CHANGED
from notifier.core.mentions import (
    MentionProblem,
    check_mention,
    check_owner,
    from_slash_command,
    mentions,
)
from notifier.core.status import COMPLETE, FAILED, RUNNING
from notifier.core.subscriptions import mentions_for
from notifier.notify.render import render_thread_reply
from tests.conftest import make_event, make_status, make_subscription

OWNER = "<@U0OWNER01>"
FAILED_NOW = make_event(make_status(FAILED, 80, error="locked"), make_status(RUNNING, 80))
DEFAULT = frozenset({FAILED_EVENT})


@pytest.mark.parametrize("good", ["<@U024BE7LH>", "<@W0ENTERPRISE1>", "<!subteam^SAZ94GDB8>"])
def test_a_user_or_a_user_group_is_an_owner(good: str) -> None:
    assert check_owner(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "@alice",
        "alice",
        "<@u024be7lh>",
        "<@U024BE7LH|alice>",
        "<!here>",
        "<!channel>",
        "<!subteam^S1>",
        "<@U024BE7LH> <!channel>",
        "<@U024BE7LH>\n",
        "<https://evil.example|click>",
    ],
)
def test_anything_else_is_refused_as_an_owner_saying_what_to_write(bad: str) -> None:
    with pytest.raises(MentionProblem, match=r'write "<@U…>"'):
        check_owner(bad)


def test_here_is_an_extra_mention_but_channel_and_everyone_are_refused() -> None:
    assert check_mention("<!here>") == "<!here>"
    for loud in ("<!channel>", "<!everyone>"):
        with pytest.raises(MentionProblem, match="pages every member"):
            check_mention(loud)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("<@U024BE7LH|alice>", "<@U024BE7LH>"),
        ("<@U024BE7LH>", "<@U024BE7LH>"),
        ("<!subteam^SAZ94GDB8|@oncall>", "<!subteam^SAZ94GDB8>"),
        ("@alice", None),
        ("<!channel>", None),
        ("<#C0123|general>", None),
    ],
)
def test_a_slash_command_mention_is_the_id_slack_escaped(typed: str, stored: str | None) -> None:
    assert from_slash_command(typed) == stored


def test_failed_mentions_owners_then_extra_people_each_once() -> None:
    event = replace(FAILED_NOW, owners=(OWNER, "<@U0LEAD001>"))
    said = mentions(event.owners, ("<@U0LEAD001>", "<!here>"), DEFAULT, frozenset(), event)
    assert said == (OWNER, "<@U0LEAD001>", "<!here>")


def test_a_change_into_failed_answers_to_mention_on_failed() -> None:
    event = replace(FAILED_NOW, owners=(OWNER,))
    assert mentions(event.owners, (), DEFAULT, frozenset({STATE_CHANGED}), event) == (OWNER,)


def test_of_a_failure_sent_twice_only_the_state_change_mentions() -> None:
    change = replace(FAILED_NOW, owners=(OWNER,))
    failed = replace(change, type=FAILED_EVENT)
    both = frozenset({STATE_CHANGED, FAILED_EVENT})
    assert mentions(change.owners, (), DEFAULT, both, change) == (OWNER,)
    assert mentions(failed.owners, (), DEFAULT, both, failed) == ()
    # Following only the failed events, that one carries it.
    assert mentions(failed.owners, (), DEFAULT, frozenset({FAILED_EVENT}), failed) == (OWNER,)


def test_running_completed_and_stalled_mention_nobody_unless_asked() -> None:
    running = replace(make_event(make_status(RUNNING, 40)), owners=(OWNER,))
    done = replace(
        make_event(make_status(COMPLETE, 100), make_status(RUNNING, 90)), owners=(OWNER,)
    )
    stalled = replace(running, type=STALLED)
    for event in (running, done, stalled):
        assert mentions(event.owners, (), DEFAULT, frozenset(), event) == ()
    wider = frozenset({COMPLETED, STALLED})
    assert mentions(done.owners, (), wider, frozenset(), done) == (OWNER,)
    assert mentions(stalled.owners, (), wider, frozenset(), stalled) == (OWNER,)


def test_no_owners_and_no_extra_people_mention_nobody() -> None:
    channel = make_subscription(1, "slack_channel")
    assert mentions_for(channel, FAILED_NOW) == ()


def test_the_reply_leads_with_the_mentions_and_escapes_upstream_text() -> None:
    event = replace(
        make_event(
            make_status(FAILED, 80, error="<!channel> build broke <@U0ATTACKER>"),
            make_status(RUNNING, 80),
            label="EU <!everyone> fleet",
        ),
        owners=(OWNER,),
    )
    reply = render_thread_reply(event, (OWNER,))
    everything = reply.text + repr(reply.blocks)
    assert reply.text.startswith(f"{OWNER} :x: Running → Failed (80%)")
    assert everything.count("<@") == 2  # the owner, in the text and in the blocks
    assert "<!channel>" not in everything
    assert "&lt;@U0ATTACKER&gt;" in everything


def test_imagewatch_add_takes_owners_slack_escaped_after_the_label() -> None:
    command = parse("add 1234 567890 EU fleet owner <@U024BE7LH|alice> <!subteam^SAZ94GDB8|@ops>")
    assert command == Add(1234, 567890, "EU fleet", ("<@U024BE7LH>", "<!subteam^SAZ94GDB8>"))
    assert parse("add 1234 567890 the owner build") == Add(1234, 567890, "the owner build")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("add 1234 567890 owner @alice", "Escape channels, users, and links"),
        ("add 1234 567890 owner <!channel>", "owner takes Slack users or user groups"),
    ],
)
def test_imagewatch_owner_that_is_no_slack_user_is_refused(text: str, says: str) -> None:
    with pytest.raises(BadCommand, match=says):
        parse(text)
