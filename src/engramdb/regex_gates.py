"""Which words a regular expression needs: a cheap test that skips the patterns that cannot match a text.

The rule extractor runs about two hundred patterns over every sentence of a write, and the privacy labels,
the secret scanner and the date resolver a dozen or more each; almost all of them fail. On LoCoMo fewer than 3
in 100 (sentence, extraction pattern) pairs hold a word that the pattern needs. `needed(rx)` reads the
pattern's parse tree for a set of literal strings one of which any match must contain ("moved" or
"relocated"); a text that holds none of them, ignoring case, is not searched. The test only ever lets more
through: where the tree gives no such set, the pattern always runs, so results are the same as without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

# the parser behind `re.compile` (private, but it has been the same in every Python 3 since 3.11 moved it here)
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

MIN_LEN = 2  # a shorter needed string is in nearly every sentence: not worth a test
_REPEATS = tuple(getattr(_c, n) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(_c, n))


def fold(text: str) -> str:
    """`text` as the needed strings are compared with it: case-folded, with the two Turkish i's that an ignore-case
    pattern takes for "i" made "i" (a fold that can only add matches keeps the test safe)."""
    return text.casefold().replace("\u0307", "").replace("\u0131", "i")


def needed(rx: re.Pattern[str]) -> frozenset[str] | None:
    """Strings (folded), one of which every match of `rx` contains; None where none can be read."""
    try:
        tree = _p.parse(rx.pattern, rx.flags)
    except Exception:  # noqa: BLE001 - an unreadable tree only means no test: the pattern always runs
        return None
    found = _needed(list(tree))
    return found if found and min(map(len, found)) >= MIN_LEN else None


def _needed(items: Sequence[tuple[Any, Any]]) -> frozenset[str] | None:
    """For a sequence every part of which a match runs through: the most selective set any one part needs (a run
    of literal characters gives one string)."""
    best: frozenset[str] | None = None
    run: list[str] = []

    def consider(found: frozenset[str] | None) -> None:
        nonlocal best
        if found and (best is None or min(map(len, found)) > min(map(len, best))):
            best = found

    def flush() -> None:
        text = "".join(run)
        run.clear()
        if text.isascii():  # ignore-case equals casefold-equal for ASCII (fold() covers the i's)
            consider(frozenset([fold(text)]))

    for op, arg in items:
        if op is _c.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            flush()
        if op is _c.SUBPATTERN:
            consider(_needed(list(arg[3])))
        elif op is _c.BRANCH:
            consider(_union(_needed(list(alt)) for alt in arg[1]))
        elif op in _REPEATS and arg[0] >= 1:
            consider(_needed(list(arg[2])))
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            consider(_needed(list(arg)))
    if run:
        flush()
    return best


def _union(parts: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """An alternation needs one of its branches' strings, so it has a set only if every branch has one."""
    out: set[str] = set()
    for part in parts:
        if not part:
            return None
        out |= part
    return frozenset(out)


class Gates:
    """The needed strings of many patterns, tested against a text at once. The patterns' trees are read on the
    first test, not at import (~90 ms for the extractor's)."""

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self._patterns = list(patterns)
        self._index: _Index | None = None

    @property
    def needs(self) -> list[frozenset[str] | None]:
        """Per pattern, the strings one of which a match contains (None: it always runs)."""
        return self._built().needs

    def open(self, text: str) -> list[int]:
        """The indexes of the patterns that may match `text`, in order (a pattern left out cannot)."""
        index = self._built()
        folded, starts = _prepared(text)
        out = set(index.always)
        for start in starts.intersection(index.by_start):
            for w, idx in index.by_start[start]:
                if w in folded:
                    out.update(idx)
        return sorted(out)

    def _built(self) -> _Index:
        if self._index is None:  # two threads may both build it: the same result, one kept
            self._index = _Index([needed(rx) for rx in self._patterns])
        return self._index


class _Index:
    def __init__(self, needs: list[frozenset[str] | None]) -> None:
        self.needs = needs
        self.always = [i for i, n in enumerate(needs) if n is None]
        # each needed string under its first MIN_LEN characters: a text is searched only for the strings whose
        # start it holds, and each string found opens the patterns that need it
        self.by_start: dict[str, list[tuple[str, list[int]]]] = {}
        users: dict[str, list[int]] = {}
        for i, n in enumerate(needs):
            for w in n or ():
                users.setdefault(w, []).append(i)
        for w, idx in sorted(users.items()):
            self.by_start.setdefault(w[:MIN_LEN], []).append((w, idx))


@lru_cache(maxsize=64)
def _prepared(text: str) -> tuple[str, frozenset[str]]:
    """`text` folded, and the MIN_LEN-character strings that start in it; cached, since a write tests each text
    against several pattern lists (labels, secrets, dates), some twice."""
    folded = fold(text)
    return folded, frozenset(folded[i : i + MIN_LEN] for i in range(len(folded) - MIN_LEN + 1))
