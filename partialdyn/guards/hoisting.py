"""Each source read once per guard call: the guard function's checks joined over shared locals.

An entry's guards are checks over the sources they read (kinds.Check), and a model's
guards read the same objects many times (`self._modules['h']._modules['0']._modules['attn']`
for each parameter, check and attribute of that layer).  `joined_checks` writes them as
one `and` chain in which every source path (a name followed by attribute reads and
subscripts, `sources.Src.path`) that is read more than once is evaluated at its first
read that certainly runs (`(__pd_readN := path)`) and read from that local afterwards;
a source a check reads several times is evaluated once, and a check identical to an
earlier one is left out.  Reading a path once is what the trace did; sharing it only
assumes that reading the same attribute or item twice in a row gives the same object,
as guards in general do.  Paths come structured from their sources and checks from
their kinds: nothing is parsed.  Each guard's own code (Guard.code, what a failure is
explained with) reads its sources without these locals.
"""
from __future__ import annotations

from collections import Counter

from ..names import READ_ONCE
from ..sources import Over
from .kinds import MARKS, read_index


def _name_rooted(path) -> bool:
    return path is not None and not isinstance(path[0], Over)


def _count(src, counts: Counter, extended: Counter) -> None:
    """Adds one read of `src` (each prefix of its path, the base of a call over a source included)."""
    path = src.path
    if path is None:
        return
    if not _name_rooted(path):
        _count(path[0].base, counts, extended)
        return
    for length in range(2, len(path) + 1):
        counts[path[:length]] += 1
        if length > 2:
            extended[(path[:length - 1], path[:length])] += 1


def _shared(counts: Counter, extended: Counter) -> set:
    """Prefixes read more than once, except one read only as the start of a single longer shared path
    (that path's local covers it)."""
    longest = Counter()
    for (prefix, _), n in extended.items():
        longest[prefix] = max(longest[prefix], n)
    return {key for key, n in counts.items() if n > 1 and n > longest[key]}


class _Writer:
    """Spells reads in evaluation order, binding a local at each shared prefix where the read certainly runs
    and a later read needs it, and using the longest prefix already in a local."""

    def __init__(self, counts: Counter, extended: Counter):
        self.shared, self.local = _shared(counts, extended), {}
        self.remaining = counts          # reads of each prefix not spelled yet
        self._count = 0

    def fresh(self) -> str:
        self._count += 1
        return f"{READ_ONCE}{self._count}"

    def read(self, src, binds: bool) -> tuple[str, str | None]:
        """(the expression that reads `src` here, the local holding its value after it, if any)."""
        path = src.path
        if path is None:
            return src.code, None
        if not _name_rooted(path):
            base, _ = self.read(path[0].base, binds)
            return path[0].code(base) + "".join(path[1:]), None
        for length in range(2, len(path) + 1):
            self.remaining[path[:length]] -= 1
        start = next((n for n in range(len(path), 1, -1) if path[:n] in self.local), 1)
        expr = self.local[path[:start]] if start > 1 else path[0]
        for length in range(start + 1, len(path) + 1):
            expr += path[length - 1]
            if binds and path[:length] in self.shared and self.remaining[path[:length]] > 0:
                self.local[path[:length]] = name = self.fresh()
                expr = f"({name} := {expr})"
        held = self.local.get(path) if len(path) > 1 else path[0]
        return expr, held

    def check(self, check) -> str:
        """The check's template with each read spelled; a read the template makes again uses its first value."""
        pieces = MARKS.split(check.template)           # text, mark, text, mark, ..., text
        uses = Counter(pieces[1::2])
        later: dict = {}
        for i in range(1, len(pieces), 2):
            mark = pieces[i]
            if mark in later:
                pieces[i] = later[mark]
                continue
            src = check.reads[read_index(mark)]
            expr, held = self.read(src, check.binds)
            if held is None and uses[mark] > 1 and check.binds:
                held = self.fresh()
                expr = f"({held} := {expr})"
                if _name_rooted(src.path):
                    self.local[src.path] = held
            pieces[i], later[mark] = expr, held or expr
        return "".join(pieces)


def joined_checks(guards) -> str:
    """The guards' checks as one `and` chain (Python source) reading each shared source once."""
    distinct = {}                      # the same check again cannot fail where the first passed
    for g in guards:
        distinct.setdefault(g.code, g.check)
    if not distinct:
        return "True"
    counts, extended = Counter(), Counter()
    for check in distinct.values():
        for src in check.reads:
            _count(src, counts, extended)
    writer = _Writer(counts, extended)
    return " and ".join(f"({writer.check(check)})" for check in distinct.values())


def read_once(sources) -> list[str]:
    """Expressions for `sources`, evaluated one after the other, each in full (a graph call's arguments): a
    path several of them read is read once, by the first, into a local the others use."""
    counts, extended = Counter(), Counter()
    for src in sources:
        _count(src, counts, extended)
    writer = _Writer(counts, extended)
    return [writer.read(src, True)[0] for src in sources]
