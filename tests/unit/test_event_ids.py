"""Event ids: the ULID layout, digit for digit."""

from __future__ import annotations

import base64
import random
import re
import time

from notifier.core.event_ids import event_id, new_event_id

_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def _reference(ms: int, random_bytes: bytes) -> str:
    """The ULID spelled out: 128 bits, two zero bits in front, 26 base32 digits."""
    value = (ms << 80) | int.from_bytes(random_bytes, "big")
    digits = base64.b32encode(value.to_bytes(20, "big"))[6:]
    return "evt_" + digits.translate(_TO_CROCKFORD).decode("ascii")


def test_an_id_is_its_milliseconds_and_random_bits_as_a_ulid() -> None:
    rng = random.Random(9)
    cases = [(0, bytes(10)), ((1 << 48) - 1, b"\xff" * 10)]
    cases += [(rng.getrandbits(48), rng.randbytes(10)) for _ in range(2000)]
    # The same millisecond twice in a row (the cached digits) and a new one after it.
    cases += [(1_790_000_000_000, rng.randbytes(10)) for _ in range(3)]
    cases += [(1_790_000_000_001, rng.randbytes(10))]
    for ms, random_bytes in cases:
        assert event_id(ms, random_bytes) == _reference(ms, random_bytes)


def test_ids_sort_by_time_and_differ() -> None:
    made = [new_event_id() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"evt_[0-9A-HJKMNP-TV-Z]{26}", i) for i in made)
    early = new_event_id(time.time_ns() // 1_000_000 - 1000)
    assert early < made[0]
