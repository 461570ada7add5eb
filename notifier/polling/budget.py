"""The budget-aware claim: which due watches a tick polls when more are due than it can afford.

The ranking itself is :mod:`notifier.core.schedule`'s (pure, over seconds, over the watches
as the store's claim reads them); this is its adapter to the credentials' budgets and to the
poller's plans, and the process's memory of
what similar jobs did (:class:`~notifier.core.schedule.History`), learnt from every change of
state a poll sees.

Clanforge's budget is per credential: with several credentials the candidates are ranked per
credential against that credential's slots, so watches of a busy account never take the turns
of a quiet one (summed, one account's watches could fill a claim its own rate cannot poll while
another's rate went unused).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from notifier.core.events import Event
from notifier.core.poll_plan import ClaimedWatch, PollPlan
from notifier.core.schedule import (
    History,
    Known,
    PastChange,
    SchedulePolicy,
    on_clock,
    outlook,
    pick,
)

PAST_CHANGES: Final = 5_000
"""How many of the latest state changes a starting process learns from: enough for the last
64 waits and runs of dozens of account services, read in one short query."""


class BudgetSchedule:
    """Ranks a claim's candidates when more are due than ``slots`` requests a tick."""

    def __init__(
        self,
        policy: SchedulePolicy,
        slots: int,
        tick_seconds: float,
        *,
        credential_slots: Mapping[str, int] | None = None,
        credential_of: Callable[[int], str | None] | None = None,
        share_of: Callable[[str], float] | None = None,
    ) -> None:
        """``slots`` requests a tick in all; with ``credential_of`` (account service id to
        credential name) each credential's candidates are ranked against its own
        ``credential_slots``, and those of no credential (refused without a request) all go.

        ``share_of`` (credential name to this replica's part of its turns lately, see
        :meth:`~notifier.clanforge.shared_budget.SharedTurns.share`) scales each credential's
        slots to what this replica actually gets of a budget other replicas share: claimed
        whole by each of N busy replicas, a tick's picks waited up to N ticks for their turns."""
        self.policy = policy
        self.slots = max(slots, 1)
        self.tick_seconds = tick_seconds
        self.history = History(policy)
        self._credential_slots = dict(credential_slots or {})
        self._credential_of = credential_of
        self._share_of = share_of
        self.binding = False
        """Set when a claim had more due than its slots (its owner clears it)."""

    def rank(self, candidates: Sequence[Known], due_by: datetime) -> list[int]:
        """Every candidate, in due order, while the budget covers them; else the ``slots`` ones
        the scheduler picks, most urgent first (the gap bound served before anything else)."""
        credential_of = self._credential_of
        if credential_of is None:
            return self._rank(candidates, due_by, self.slots)
        groups: dict[str | None, list[Known]] = {}
        for candidate in candidates:
            groups.setdefault(credential_of(candidate.account_service_id), []).append(candidate)
        chosen: list[int] = []
        for name, group in groups.items():
            if name is None:
                chosen.extend(candidate.watch_id for candidate in group)
            else:
                slots = self._credential_slots.get(name, self.slots)
                if self._share_of is not None:
                    # Rounded up: a turn short would leave the shared budget idle at the end of
                    # each tick; a turn over waits a fraction of one.
                    slots = math.ceil(slots * self._share_of(name) - 1e-9)
                chosen.extend(self._rank(group, due_by, slots))
        return chosen

    def _rank(self, candidates: Sequence[Known], due_by: datetime, slots: int) -> list[int]:
        slots = max(slots, 1)
        if len(candidates) <= slots:
            return [candidate.watch_id for candidate in candidates]
        self.binding = True
        policy, history = self.policy, self.history
        outlooks = [outlook(candidate, history, policy) for candidate in candidates]
        return pick(outlooks, due_by.timestamp(), slots, policy, self.tick_seconds)

    def learn_past(self, events: Sequence[Event]) -> int:
        """Learn how long jobs waited and ran from ``state_changed`` events (oldest first) seen
        before this process started; how many waits and runs they gave (see
        :meth:`History.learn_past`)."""
        return self.history.learn_past(
            PastChange(
                event.account_service_id,
                event.image_version_id,
                None if event.previous is None else event.previous.state_id,
                event.current.state_id,
                event.occurred_at.timestamp(),
                on_clock(event.current.started),
            )
            for event in events
        )

    def learn(self, watch: ClaimedWatch, plan: PollPlan) -> None:
        """Note how long the state a poll saw end lasted (a wait, or a run to its finish)."""
        previous, current = watch.previous, plan.status
        if previous is None or current is None or watch.state_since is None:
            return
        if plan.state_since is None:
            return
        started = current.started or previous.started
        self.history.record_change(
            watch.account_service_id,
            previous.state_id,
            current.state_id,
            since=watch.state_since.timestamp(),
            at=plan.state_since.timestamp(),
            run_started=on_clock(started),
        )
