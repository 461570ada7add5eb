"""Event ids: ULIDs, so that ids sort by creation time in logs and receivers' stores."""

from __future__ import annotations

import base64
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's RFC 4648 base32 alphabet, letter for letter onto Crockford's: the encoding runs in C.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def new_event_id(now_ms: int | None = None) -> str:
    """``evt_`` and a 26-character ULID: 48 bits of milliseconds, 80 random bits."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    # 160 bits are 32 base32 digits; the last 26 are the ULID's 130 (128 and two leading zeros).
    digits = base64.b32encode(value.to_bytes(20, "big"))[6:]
    return "evt_" + digits.translate(_TO_CROCKFORD).decode("ascii")
