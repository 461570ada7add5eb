"""Removing secrets from text a person will see, whole or in pieces, in any common encoding.

Upstream error pages echo request headers, proxies quote URLs, and the text is cut to a length
before it is stored. Replacing the exact secret is not enough: a cut leaves a prefix, the Basic
header carries ``access:secret`` in base64, a URL carries it percent-encoded and a JSON body
escaped. So every run of :data:`MIN_RUN` characters taken from any of those forms is removed,
wherever it sits; callers scrub before they truncate, so that no cut hides a secret's start.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Final
from urllib.parse import quote, quote_plus

MIN_RUN: Final = 8
"""The shortest piece of a secret that is removed wherever it appears."""
MIN_SECRET: Final = 4
"""Shorter secrets (test fixtures) would match ordinary words: left alone."""
MASK: Final = "***"


def encodings(secret: str) -> set[str]:
    """The forms a secret takes in headers, URLs and JSON."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        base64.b64encode(secret.encode()).decode(),
    }
    return {f for f in forms if f}


class Scrubber:
    """Removes pieces of ``secrets`` from text; cheap to call when nothing matches."""

    __slots__ = ("_grams", "_shorts")

    def __init__(self, secrets: Iterable[str]) -> None:
        grams: set[str] = set()
        shorts: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                continue
            for form in encodings(secret):
                if len(form) < MIN_RUN:
                    shorts.add(form)
                    continue
                grams.update(form[i : i + MIN_RUN] for i in range(len(form) - MIN_RUN + 1))
        self._grams: Final = frozenset(grams)
        # Longest first, so a form is not half-replaced through a shorter one inside it.
        self._shorts: Final = tuple(sorted(shorts, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._grams or self._shorts)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        grams = self._grams
        for i in range(len(text) - MIN_RUN + 1):
            if text[i : i + MIN_RUN] in grams:
                end = i + MIN_RUN
                if spans and spans[-1][1] >= i:
                    spans[-1] = (spans[-1][0], end)
                else:
                    spans.append((i, end))
        return spans

    def scrub(self, text: str) -> str:
        """``text`` with every piece of a secret (``MIN_RUN`` characters or more) masked."""
        if self._grams and len(text) >= MIN_RUN:
            spans = self._spans(text)
            if spans:
                parts: list[str] = []
                last = 0
                for start, end in spans:
                    parts.append(text[last:start])
                    parts.append(MASK)
                    last = end
                parts.append(text[last:])
                text = "".join(parts)
        for short in self._shorts:
            text = text.replace(short, MASK)
        return text

    def scrub_bytes(self, body: bytes) -> bytes:
        """The same over a body of unknown encoding; returns ``body`` itself when unchanged."""
        text = body.decode("utf-8", errors="surrogateescape")
        clean = self.scrub(text)
        return body if clean == text else clean.encode("utf-8", errors="surrogateescape")


@lru_cache(maxsize=64)
def scrubber_of(secrets: tuple[str, ...]) -> Scrubber:
    """One scrubber per set of secrets: error texts of one subscription share it."""
    return Scrubber(secrets)
