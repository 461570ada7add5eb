"""Standard Webhooks signing secrets: their one accepted form, new ones, and which sign now.

A secret taken from a user (the configuration file, the admin API) must be one every receiver
library accepts: ``whsec_`` and the base64 of 24 to 64 bytes. The messages never quote the
value, since they are printed, logged and returned in API errors.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime
from typing import Final

PREFIX: Final = "whsec_"
MIN_BYTES: Final = 24
MAX_BYTES: Final = 64
NEW_SECRET_BYTES: Final = 32
"""What a generated secret carries: HMAC-SHA256's own block of strength."""


def check_secret(raw: str) -> str:
    """``raw`` if it is ``whsec_<base64 of 24 to 64 bytes>``; ValueError naming what is wrong."""
    if not raw.startswith(PREFIX):
        raise ValueError("must be a Standard Webhooks secret of the form whsec_<base64>")
    try:
        key = base64.b64decode(raw.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64 after whsec_") from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(f"must decode to {MIN_BYTES} to {MAX_BYTES} bytes, got {len(key)}")
    return raw


def new_secret() -> str:
    """A fresh random secret in the accepted form."""
    return PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode("ascii")


def signing_secrets(
    current: str | None, previous: str | None, previous_until: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets a request is signed with now: the current one, and during a rotation's
    overlap the one it replaced too, so that receivers not yet on the new secret still verify."""
    found = [] if current is None else [current]
    if previous is not None and previous_until is not None and now < previous_until:
        found.append(previous)
    return tuple(found)
