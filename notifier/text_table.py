"""Aligned plain-text tables for the command line, fitted to the terminal.

A 250-character ``watch list`` in an 80-column terminal wrapped every row into three unreadable
lines. A table wider than the terminal shortens its widest columns first: the last column (an
error with its hint) wraps onto more lines, the others end in "…". ``--wide`` and ``--json``
give the full text.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from notifier.core.clock import as_utc

GAP = "  "
ELLIPSIS = "…"
# A column is never made narrower than this (or its header, or its widest cell if narrower).
MIN_COLUMN = 6


def format_time(value: datetime | None) -> str:
    return "-" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%SZ")


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit, or None for no limit: ``COLUMNS`` when set, else the terminal's when
    ``stream`` is one. Output to a pipe or a file stays whole, for grep."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns if is_terminal else None


def _column_widths(natural: list[int], floors: list[int], room: int) -> list[int]:
    """The largest cap on column width such that the capped columns fit in ``room``."""
    low, high = 0, max(natural)
    while low < high:
        cap = (low + high + 1) // 2
        if sum(max(min(w, cap), f) for w, f in zip(natural, floors, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    return [max(min(w, low), f) for w, f in zip(natural, floors, strict=True)]


def _cell_lines(text: str, width: int, wrap: bool) -> list[str]:
    if len(text) <= width:
        return [text]
    if wrap:
        return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]
    return [text[: width - 1] + ELLIPSIS]


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None
) -> str:
    """The table, no wider than ``width`` when it can be (None: as wide as the longest cells)."""
    natural = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell))
    widths = natural
    room = None if width is None else width - len(GAP) * (len(headers) - 1)
    if room is not None and sum(natural) > room:
        floors = [min(n, max(len(h), MIN_COLUMN)) for n, h in zip(natural, headers, strict=True)]
        widths = _column_widths(natural, floors, room)
    last = len(headers) - 1

    def lines(cells: Sequence[str]) -> list[str]:
        parts = [_cell_lines(cell, widths[i], wrap=i == last) for i, cell in enumerate(cells)]
        height = max(len(p) for p in parts)
        return [
            GAP.join(
                (p[n] if n < len(p) else "").ljust(widths[i]) for i, p in enumerate(parts)
            ).rstrip()
            for n in range(height)
        ]

    out = lines(headers)
    for row in rows:
        out += lines(row)
    return "\n".join(out)
