"""The one range every id is checked against, on the command line and in the API alike.

2^53 - 1 is the largest integer a JSON number carries exactly (JavaScript's
``Number.MAX_SAFE_INTEGER``): an id above it would come back changed from a browser or ``jq``.
"""

from __future__ import annotations

from typing import Final

MAX_ID: Final = 2**53 - 1


class BadId(ValueError):
    """Not a whole number from 1 to :data:`MAX_ID`; the message says so, naming the value."""


def id_problem(text: object) -> str:
    """The one message, after the name of whatever was given (an option, a field, a query).

    What was given is cut short, so a hostile value cannot make the message as long as itself.
    """
    return f"must be a whole number from 1 to {MAX_ID}, got {_shown(text)}"


def _shown(given: object) -> str:
    if isinstance(given, int) and not isinstance(given, bool) and given.bit_length() > 64:
        return "a number far beyond that"
    text = repr(given)
    return text if len(text) <= 26 else f"{text[:22]}…{text[-1]}"


def parse_id(text: str | int) -> int:
    """``text`` as an id, or :class:`BadId`."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise BadId(id_problem(text)) from None
    if not 1 <= value <= MAX_ID:
        raise BadId(id_problem(text))
    return value
