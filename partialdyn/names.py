"""Constant tables for generated code (guard functions and runners).

Generated Python refers to objects it cannot spell as literals (dtypes, types, module dicts, constants) by
name; a table hands out one name per object identity and is the namespace the code is compiled with.
"""
from __future__ import annotations


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
