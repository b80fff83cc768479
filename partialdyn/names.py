"""Names in generated code (guard functions and runners) and their constant tables.

Every name generated code binds or refers to starts with `PREFIX`; the frame's arguments are renamed into
their own part of that space (`argument_name`), so no user name (a parameter called `G`, `math`, `len` or
`__pd_k0`) can shadow a generated one.  Objects generated code cannot spell as literals (dtypes, types,
module dicts, dict keys, constants) are named through a table that hands out one name per object identity
and is the namespace the code is compiled with.
"""
from __future__ import annotations

PREFIX = "__pd_"
ARGUMENT_PREFIX = PREFIX + "a_"      # no other generated name starts with this
GLOBALS = PREFIX + "globals"         # the traced function's globals dict
FUNCTION = PREFIX + "fn"             # the traced function itself
READ_ONCE = PREFIX + "read"          # locals holding a source that generated code reads once (guards.hoisting)


def argument_name(name: str) -> str:
    """How generated code spells the frame argument `name` (guards and runners take arguments by position)."""
    return ARGUMENT_PREFIX + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


class Constants(dict):
    """name -> object, with `name_for(obj)` giving each distinct object (by identity) one name."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix
        self._by_id = {}

    def name_for(self, value) -> str:
        name = self._by_id.get(id(value))
        if name is None:
            name = f"{self.prefix}{len(self)}"
            self[name] = value
            self._by_id[id(value)] = name
        return name
