"""The per-channel pacer with a fake clock: spacing, order, and backing off after a 429."""

from __future__ import annotations

import asyncio

from notifier.core.pacing import MemoryPaceLedger
from notifier.notify.pacing import ChannelPacer
from tests.support.clock import HandClock


def _pacer(time: HandClock) -> ChannelPacer:
    return ChannelPacer(1.0, clock=time.seconds, sleep=time.sleep)


async def test_sends_to_one_channel_are_spaced_and_keep_their_order() -> None:
    time = HandClock.at_seconds(100.0)
    pacer = _pacer(time)
    turns: list[tuple[int, float]] = []

    async def send(n: int) -> None:
        await pacer.wait_turn("C1")
        turns.append((n, time.seconds()))

    await asyncio.gather(*(send(n) for n in range(4)))

    assert turns == [(0, 100.0), (1, 101.0), (2, 102.0), (3, 103.0)]


async def test_channels_do_not_wait_for_each_other() -> None:
    time = HandClock.at_seconds(100.0)
    pacer = _pacer(time)

    await pacer.wait_turn("C1")
    await pacer.wait_turn("C2")

    assert time.slept == []


async def test_a_429_pushes_the_channels_next_turn_back() -> None:
    time = HandClock.at_seconds(100.0)
    pacer = _pacer(time)
    await pacer.wait_turn("C1")

    await pacer.back_off("C1", 30)
    await pacer.wait_turn("C1")

    assert time.slept == [30.0]
    assert time.seconds() == 130.0


async def test_two_replicas_sharing_one_ledger_post_to_a_channel_one_turn_apart() -> None:
    time = HandClock.at_seconds(100.0)
    ledger = MemoryPaceLedger()
    one, other = (
        ChannelPacer(1.0, clock=time.seconds, sleep=time.sleep, ledger=ledger) for _ in range(2)
    )
    turns: list[float] = []
    for pacer in (one, other, one, other):
        await pacer.wait_turn("C1")
        turns.append(time.seconds())

    assert turns == [100.0, 101.0, 102.0, 103.0]


async def test_a_429_seen_by_one_replica_holds_the_channel_back_for_the_other() -> None:
    time = HandClock.at_seconds(100.0)
    ledger = MemoryPaceLedger()
    one = ChannelPacer(1.0, clock=time.seconds, sleep=time.sleep, ledger=ledger)
    other = ChannelPacer(1.0, clock=time.seconds, sleep=time.sleep, ledger=ledger)

    await one.back_off("C1", 30)
    await other.wait_turn("C1")

    assert time.seconds() == 130.0
