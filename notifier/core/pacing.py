"""Turns shared by every replica: the next moment a rate-limited thing may be used, per key.

Clanforge counts requests per credential and Slack messages per channel, whatever the number of
replicas sending them. So the pace of each (a credential, a channel) is one value, kept where
every replica sees it: the moment its next turn starts (``next_at``, seconds on the wall clock).
Taking ``count`` turns moves it on by ``count`` intervals, from now if it lies in the past; the
turns taken are the ``count`` moments one interval apart that end there. That is a token bucket
holding ``burst`` requests (the generic cell rate algorithm): ``tolerance`` lets turns start up
to that long in the past, so an idle key may send ``burst`` at once and no more.

Taking turns in a batch keeps a busy replica to one round trip to the database per batch, not
per request; turns that a replica took and could not use in time are lost, never lent, so the
rate is never exceeded. A ``Retry-After`` pushes ``next_at`` for everyone (:meth:`push`).

:class:`PaceLedger` is what the sending side needs; :class:`MemoryPaceLedger` keeps the values in
the process (SQLite: one process), ``notifier.store.pacing.SqlPaceLedger`` in the database.
"""

from __future__ import annotations

from typing import Protocol


def reserve(
    next_at: float | None, now: float, count: int, interval: float, tolerance: float
) -> float:
    """The key's new ``next_at`` once ``count`` turns are taken at ``now``.

    The database computes the same in one statement (``notifier.store.pacing``)."""
    start = now - tolerance if next_at is None else max(next_at, now - tolerance)
    return start + count * interval


def turns_ending(end: float, count: int, interval: float) -> list[float]:
    """The ``count`` turns, one interval apart, that a take ending at ``end`` gave, first first."""
    return [end - (count - i) * interval for i in range(count)]


class PaceLedger(Protocol):
    async def take(
        self, key: str, count: int, interval: float, tolerance: float, now: float
    ) -> float:
        """Take ``count`` turns of ``key`` at ``now``, atomically; the new ``next_at``
        (:func:`reserve`). Its turns are :func:`turns_ending` of it."""
        ...

    async def push(self, key: str, until: float) -> None:
        """No turn of ``key`` starts before ``until`` (an upstream ``Retry-After``)."""
        ...


class MemoryPaceLedger:
    """:class:`PaceLedger` in this process alone: right for one process (SQLite), and tests."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    async def take(
        self, key: str, count: int, interval: float, tolerance: float, now: float
    ) -> float:
        end = self._next[key] = reserve(self._next.get(key), now, count, interval, tolerance)
        return end

    async def push(self, key: str, until: float) -> None:
        self._next[key] = max(self._next.get(key, until), until)
