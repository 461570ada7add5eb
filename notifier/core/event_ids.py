"""Event ids: ULIDs, so that ids sort by creation time in logs and receivers' stores."""

from __future__ import annotations

import base64
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's RFC 4648 base32 alphabet, letter for letter onto Crockford's: the encoding runs in C.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
# Every 10 bits as their two Crockford digits: the 80 random bits are eight look-ups.
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)

# The id's first ten digits (two zero bits and the 48 bits of milliseconds) for the last
# millisecond asked: a changed tick makes thousands of ids a millisecond apart or less.
_last_prefix: tuple[int, str] = (-1, "")


def new_event_id(now_ms: int | None = None) -> str:
    """``evt_`` and a 26-character ULID: 48 bits of milliseconds, 80 random bits."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return event_id(ms, os.urandom(10))


def event_id(ms: int, random_bytes: bytes) -> str:
    """The id of these milliseconds and these 10 random bytes."""
    global _last_prefix
    cached_ms, prefix = _last_prefix
    if ms != cached_ms:
        prefix = _time_digits(ms)
        _last_prefix = (ms, prefix)
    r = int.from_bytes(random_bytes, "big")
    pairs = _PAIRS
    return (
        prefix
        + pairs[r >> 70]
        + pairs[(r >> 60) & 1023]
        + pairs[(r >> 50) & 1023]
        + pairs[(r >> 40) & 1023]
        + pairs[(r >> 30) & 1023]
        + pairs[(r >> 20) & 1023]
        + pairs[(r >> 10) & 1023]
        + pairs[r & 1023]
    )


def _time_digits(ms: int) -> str:
    # 160 bits are 32 base32 digits; the ULID's 130 are the last 26, its time the first 10 of
    # those (two leading zero bits and 48 of milliseconds; the random bits start on a digit).
    digits = base64.b32encode((ms << 80).to_bytes(20, "big"))[6:16]
    return "evt_" + digits.translate(_TO_CROCKFORD).decode("ascii")
