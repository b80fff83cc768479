"""The one log of what a trace did beyond its stack and locals, with checkpoints to undo it.

Three kinds of entries: a container (or object made in the trace) mutated, an attribute or
global assignment on an object of the caller's world (replayed after the graph runs), and a
step of an iterator or lazy iterator tracker.  At a graph break the instruction that broke
re-runs in Python, so what it logged after the last checkpoint is undone: `rollback(mark)`
resets the iterator steps and assignments and hands back the containers that instruction
mutated (the tracer refuses the break if the rebuilt frame can reach them).
"""
from __future__ import annotations


class SideEffects:
    DELETED = object()      # an assignment that is a `del obj.name`

    def __init__(self):
        self._log: list[tuple] = []     # ("mutate", tracker) | ("writes", previous dict) | ("step", it, attr, before)
        self._writes: dict = {}         # (id(owner.value), name) -> (owner tracker, name, value tracker or DELETED)

    # ------------------------------------------------ recording
    def mutate(self, container) -> None:
        """`container` (a tracker) changes in place: synced into the caller's world if it came from there."""
        self._log.append(("mutate", container))

    def write(self, owner, name: str, value) -> None:
        """`owner.name = value` (DELETED: `del owner.name`) on an object of the caller's world."""
        self._log.append(("writes", dict(self._writes)))
        key = (id(owner.value), name)
        self._writes.pop(key, None)
        self._writes[key] = (owner, name, value)

    def step(self, iterator, attr: str, value) -> None:
        """Move an iterator tracker: its `attr` (`pos`, or a lazy iterator's `state`) becomes `value`."""
        self._log.append(("step", iterator, attr, getattr(iterator, attr)))
        setattr(iterator, attr, value)

    # ------------------------------------------------ reading
    def written(self, owner, name: str):
        """The (owner, name, value) of the trace's last assignment to `owner.name`, or None."""
        return self._writes.get((id(owner.value), name))

    def writes(self) -> list[tuple]:
        """Every assignment, in the order they must be replayed: (owner tracker, name, value or DELETED)."""
        return list(self._writes.values())

    def mutated(self) -> list:
        """The containers mutated, in order (with repeats)."""
        return [entry[1] for entry in self._log if entry[0] == "mutate"]

    # ------------------------------------------------ undo
    def checkpoint(self) -> int:
        return len(self._log)

    def rollback(self, mark: int) -> list:
        """Undo the steps and assignments logged after `mark`; returns the containers mutated after it (their
        mutations stay logged: the tracer decides whether the break is safe)."""
        undone = self._log[mark:]
        del self._log[mark:]
        for entry in reversed(undone):
            if entry[0] == "step":
                _, iterator, attr, before = entry
                setattr(iterator, attr, before)
            elif entry[0] == "writes":
                self._writes = entry[1]
        kept = [entry for entry in undone if entry[0] == "mutate"]
        self._log += kept
        return [entry[1] for entry in kept]
