"""Who a Slack message may mention, and when: owners of a watch, a subscription's extra people.

A mention pages a person, so only two sources may produce one: the configuration (checked here,
strictly) and a verified Slack user's slash command (Slack itself wrote the ``<@U…|name>``).
Upstream text (labels, job errors) never does: the renderers escape ``<`` and ``>`` in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from notifier.core.events import FAILED_EVENT, STATE_CHANGED, TERMINAL_EVENT_FOR_STATE, Event

DEFAULT_MENTION_ON: Final = (FAILED_EVENT,)

# Slack ids: an upper-case letter naming the kind, then upper-case letters and digits. Users are
# U… (W… on Enterprise Grid); user groups S….
_USER: Final = re.compile(r"<@([UW][A-Z0-9]{2,20})>")
_GROUP: Final = re.compile(r"<!subteam\^(S[A-Z0-9]{2,20})>")
# What Slack sends in a slash command with "escape users" on: the id, then the shown name.
_ESCAPED: Final = re.compile(
    r"<(@[UW][A-Z0-9]{2,20}|!subteam\^S[A-Z0-9]{2,20})(?:\|[^<>]{0,100})?>"
)

HERE: Final = "<!here>"
"""Pings the channel's active members: allowed in ``mention``, never as an owner."""

_LOUD: Final = frozenset({"<!channel>", "<!everyone>"})

OWNER_FORMS: Final = '"<@U…>" (a Slack user id) or "<!subteam^S…>" (a user group id)'


class MentionProblem(ValueError):
    """Why a mention was refused, in words for the one-line error a user sees."""


def check_owner(text: str) -> str:
    """``text`` when it is a user or user-group mention exactly; :class:`MentionProblem` else."""
    if _USER.fullmatch(text) or _GROUP.fullmatch(text):
        return text
    shown = text if len(text) <= 40 else text[:40] + "…"
    raise MentionProblem(f"{shown!r} is not a Slack mention; write {OWNER_FORMS}")


def check_owners(values: Iterable[str]) -> tuple[str, ...]:
    """Each owner checked, duplicates dropped, the order kept."""
    return tuple(dict.fromkeys(check_owner(v) for v in values))


def check_mention(text: str) -> str:
    """An extra person for a subscription: an owner's forms, or ``<!here>``.

    ``<!channel>`` and ``<!everyone>`` are refused: they page every member, asleep or not, for
    each matching event; ``<!here>`` reaches those online, which is what an alert wants.
    """
    if text == HERE:
        return text
    if text in _LOUD:
        raise MentionProblem(
            f"{text} pages every member of the channel; use {HERE} or named people"
        )
    try:
        return check_owner(text)
    except MentionProblem:
        raise MentionProblem(
            f"{text[:40]!r} is not a Slack mention; write {OWNER_FORMS} or {HERE}"
        ) from None


def check_mentions(values: Iterable[str]) -> tuple[str, ...]:
    """Each extra mention checked, duplicates dropped, the order kept."""
    return tuple(dict.fromkeys(check_mention(v) for v in values))


def from_slash_command(text: str) -> str | None:
    """The mention a slash command's ``<@U123|name>`` (or ``<!subteam^S1|@team>``) stands for,
    as stored (``<@U123>``); None when ``text`` is not one (a bare ``@name``: the app must have
    "escape channels, users and links" on, or Slack sends no id to trust)."""
    found = _ESCAPED.fullmatch(text)
    if found is None:
        return None
    return f"<{found.group(1)}>"


def stands_for(event: Event) -> frozenset[str]:
    """The event types ``event`` answers to for ``mention_on``: its own, and for a change into a
    finished state the type sent beside it (a channel that follows ``state_changed`` gets the
    failure as that change, and ``mention_on = ["imageversion.failed"]`` must still page)."""
    if event.type == STATE_CHANGED and event.current.state_id in TERMINAL_EVENT_FOR_STATE:
        return frozenset({event.type, TERMINAL_EVENT_FOR_STATE[event.current.state_id]})
    return frozenset({event.type})


def carries_mention(mention_on: frozenset[str], event_types: frozenset[str], event: Event) -> bool:
    """Whether this event's delivery to a subscription is the one that mentions.

    Exactly one delivery per happening does: a failure reaches a subscription following both
    ``state_changed`` and ``failed`` as two events, and the change (the thread reply) carries
    the mention; the ``failed`` event does only when the subscription does not get the change.
    """
    if not (stands_for(event) & mention_on):
        return False
    if event.type in TERMINAL_EVENT_FOR_STATE.values():
        # Its state_changed sibling answers to this type too, so that one carries it when the
        # subscription gets it (the other filters see the same status, label and ids).
        return not (not event_types or STATE_CHANGED in event_types)
    return True


def mentions(
    owners: Iterable[str],
    extra: Iterable[str],
    mention_on: frozenset[str],
    event_types: frozenset[str],
    event: Event,
) -> tuple[str, ...]:
    """Who this delivery mentions: the watch's owners, then the subscription's people, each once;
    nobody when it is not the delivery that mentions (:func:`carries_mention`)."""
    if not carries_mention(mention_on, event_types, event):
        return ()
    return tuple(dict.fromkeys([*owners, *extra]))
