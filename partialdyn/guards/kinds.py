"""Guard kinds and the guard set one trace accumulates.

A guard is one condition over the call's inputs (`check`: a template over the
sources it reads; `code` spells it out as one Python expression), the
text a user reads (`text`, usually the same), the input dims it is about
(`dims`, used to attribute recompiles for backoff), and where it came from
(`provenance`: the operation and line that made the trace assume it).  `GuardSet`
has one builder method per kind; the tracer decides which one a read needs from
how the value is used (frontend/reads.py).  Guard code names objects through the
constant table (`GuardSet.constant`), never through their repr.
"""
from __future__ import annotations

import enum
import operator
import re
from dataclasses import dataclass, field, replace

import sympy
import torch

from .. import sources
from ..names import PREFIX, Constants
from . import function_fields, native
from .provenance import Provenance


class GuardKind(enum.StrEnum):
    """What a guard protects (docs/guards-and-recompiles.md lists each with examples), in the order logs list
    an entry's guards."""
    TENSOR_MATCH_DYNAMIC = "TENSOR_MATCH_DYNAMIC"    # a tensor's type, dtype, device, rank, layout
    TENSOR_MATCH_STATIC = "TENSOR_MATCH_STATIC"      # exact shape/strides, or one dim's value
    SHAPE = "SHAPE"                                  # symbol ranges, relations, predicates
    TYPE_MATCH = "TYPE_MATCH"                        # exact type (and a container's length or keys)
    ID_MATCH = "ID_MATCH"                            # the same object
    CONSTANT_MATCH = "CONSTANT_MATCH"                # type and value of an immutable value
    ABSENT = "ABSENT"                                # an attribute, global or key the trace found missing
    CONTENTS_MATCH = "CONTENTS_MATCH"                # the elements of a mutable container read as a whole
    MODULE_STRUCTURE = "MODULE_STRUCTURE"            # an nn.Module's children, parameters and hooks
    FUNCTION_MATCH = "FUNCTION_MATCH"                # the code (and closure size) of a function called
    ALIASING = "ALIASING"                            # two inputs are (or are not) the same object
    GLOBAL_STATE = "GLOBAL_STATE"                    # grad mode, default dtype, inference mode, autocast


_LOG_RANK = {kind: rank for rank, kind in enumerate(GuardKind)}


def in_log_order(guards) -> list:
    """Guards grouped by kind in GuardKind's order (stable within a kind), as logs list them."""
    return sorted(guards, key=lambda g: _LOG_RANK[g.kind])


_MARK_BASE = 0xE000                   # marks are private-use characters: generated code never contains them
MARKS = re.compile("([\ue000-\uf8ff])")


def mark(index: int) -> str:
    """Where a check's template puts the value of its `index`-th read."""
    return chr(_MARK_BASE + index)


def read_index(mark_: str) -> int:
    return ord(mark_) - _MARK_BASE


FIRST, SECOND, THIRD = mark(0), mark(1), mark(2)


@dataclass(frozen=True)
class Check:
    """A condition over the sources it reads: `template` is Python with `mark(i)` wherever `reads[i]`'s value
    goes.  Marks are evaluated in the order they appear, and the first mark of each read certainly runs
    when the check comes out true (not right of an `or`, not in a branch of a conditional expression, a
    comprehension or a lambda), so generated code may read the value there into a local and use it at the
    read's later marks (guards/hoisting.py).  `binds=False` makes no such promise (printed shape
    expressions): each mark is read again, and only locals bound elsewhere are used."""
    template: str
    reads: tuple = ()
    binds: bool = True

    def spelled(self) -> str:
        """The check as one Python expression on its own: each read spelled in full at its first mark and,
        for a read the template makes again (when the check binds), taken from a temporary after that."""
        temps = {}

        def spell(match) -> str:
            mark_ = match.group()
            if mark_ in temps:
                return temps[mark_]
            code = self.reads[read_index(mark_)].code
            if self.binds and self.template.count(mark_) > 1:
                temps[mark_] = temp = f"{PREFIX}t{len(temps)}"
                return f"({temp} := {code})"
            return code
        return MARKS.sub(spell, self.template)


@dataclass(frozen=True)
class Guard:
    kind: GuardKind
    check: Check              # what must be true
    text: str                 # what the user reads
    source: str = ""
    dims: tuple = ()          # dim keys ("x.size(1)") this guard constrains
    actual: str = ""          # expression whose value explains a failure
    expected: str = ""        # constant name of the expected tensor signature (TENSOR_MATCH_DYNAMIC)
    provenance: Provenance | None = None
    code: str = field(init=False)     # the check as one Python expression on its own (Check.spelled)

    def __post_init__(self):
        object.__setattr__(self, "code", self.check.spelled())


def keeps_methods(cls: type, base: type, names) -> bool:
    """No class of `cls`'s MRO before `base` (a class it derives from) defines any of `names`: `cls` uses `base`'s
    own.  What the tracer asks before holding a dict subclass as a dict, and what its guard asks again."""
    own = cls.__mro__[:cls.__mro__.index(base)]
    return all(not any(name in vars(k) for name in names) for k in own)


class GuardSet:
    """Guards in the order they must be checked (containers before their items), deduplicated."""

    def __init__(self, provenance=None):
        self._guards: dict[str, Guard] = {}
        self.constants = Constants(PREFIX + "k")          # names guard code uses for objects
        self.provenance = provenance                     # callable -> Provenance of a guard made now
        self._snapshots = {}                             # (id(function), fields) -> its FieldSnapshot

    def add(self, guard: Guard) -> None:
        if guard.code in self._guards:
            return
        if guard.provenance is None and self.provenance is not None:
            guard = replace(guard, provenance=self.provenance())
        self._guards[guard.code] = guard

    def _refs(self, src) -> None:
        """Objects the source's code names (dict keys, classes, other modules' globals)."""
        for name, value in getattr(src, "refs", ()):
            self.constants.setdefault(name, value)

    def _fields(self, fn, fields=function_fields.FIELDS):
        """One snapshot per function and fields (equal checks stay equal, and are left out when repeated).  The
        guard's namespace holds the snapshot itself, so the function and the objects its fields pointed to live
        as long as the guard reads the view: equal bytes cannot come from a reused address."""
        key = (id(fn), fields)
        if key not in self._snapshots:
            snapshot = self._snapshots[key] = function_fields.snapshot(fn, fields)
            if snapshot is not None:
                self.constant(snapshot)
        return self._snapshots[key]

    def constant(self, value) -> str:
        """A name under which guard code can refer to `value` (a dtype, a type, a device...)."""
        return self.constants.name_for(value)

    def __iter__(self):
        return iter(self._guards.values())

    # ------------------------------------------------ guard builders per kind
    def type_match(self, src, value, extra: str = "", actual: str = ""):
        """`extra` is a condition written with `{}` where the source goes (`len({}) == 3`); `actual` likewise
        the value a failure reports (`list({})`)."""
        self._refs(src)
        k = self.constant(type(value))
        template = f"type({FIRST}) is {k}" + (f" and {extra.format(FIRST)}" if extra else "")
        shown = f"type({src}) is {type(value).__qualname__}" + (f" and {extra.format(src)}" if extra else "")
        self.add(Guard(GuardKind.TYPE_MATCH, Check(template, (src,)), shown, str(src),
                       actual=actual.format(src.code) if actual else f"type({src.code}).__qualname__"))

    def id_match(self, src, value):
        self._refs(src)
        self.add(Guard(GuardKind.ID_MATCH, Check(f"{FIRST} is {self.constant(value)}", (src,)),
                       f"{src} is the same {type(value).__name__} object", str(src)))

    def constant_match(self, src, value):
        """Guard code names the expected value through the constant table, never through its repr (an Enum
        member's repr is not Python)."""
        self._refs(src)
        if value is None or type(value) is bool:     # singletons of final types: identity is type and value
            self.add(Guard(GuardKind.CONSTANT_MATCH, Check(f"{FIRST} is {value}", (src,)), f"{src} == {value!r}",
                           str(src), actual=src.code))
            return
        k = self.constant(type(value))
        # the source is read once (hoisting binds a read used twice): an attribute read can run Python (configs)
        if type(value) is float:
            # bit-exact: `==` would take -0.0 for 0.0 and never match a NaN
            template = f"type({FIRST}) is {k} and {FIRST}.hex() == {self.constant(value.hex())}"
        elif type(value).__module__ == "numpy" and hasattr(value, "tobytes"):    # a numpy scalar, bit-exact too
            template = f"type({FIRST}) is {k} and {FIRST}.tobytes() == {self.constant(value.tobytes())}"
        else:
            template = f"type({FIRST}) is {k} and {FIRST} == {self.constant(value)}"
        self.add(Guard(GuardKind.CONSTANT_MATCH, Check(template, (src,)), f"{src} == {value!r}", str(src),
                       actual=src.code))

    def tensor_match(self, src, t: torch.Tensor, static: bool, order: tuple | None = None, strided: bool = False):
        self._refs(src)
        self._tensor_match(src, t, static, order, strided)

    def _tensor_match(self, src, t: torch.Tensor, static: bool, order: tuple | None = None, strided: bool = False):
        """One tensor's metadata.  A static tensor (parameter, buffer, odd layout) is pinned to its exact
        shape and strides; a dynamic one to its rank and contiguity (of its dims permuted by `order` for a
        permuted view of a contiguous block), sizes being guarded per dim; a `strided` one (a slice, an
        index, an expand: symbolic strides) to its rank only, its strides and storage offset being guarded
        one by one as the ShapeEnv wrote them (guards/shape.py).  A plain tensor's check runs in C++ when
        guards/native.py has the library (`tensor_terms` otherwise: the same answers)."""
        k = self.constant
        order = None if static or strided else tuple(range(t.dim())) if order is None else tuple(order)
        kind = "static" if static else "strided" if strided else \
            "contiguous" if order == tuple(range(t.dim())) else "permuted"
        checker = native.checker() if kind in NATIVE_KINDS and type(t) in native.PLAIN_TENSOR_TYPES and \
            t.layout == torch.strided else None
        if checker is not None:
            code = f"{k(checker.tensor_ok)}({FIRST}, {k(checker.make_spec(t, NATIVE_KINDS[kind]))})"
        else:
            code = " and ".join(tensor_terms(FIRST, t, kind, order, k))
        text = f"{src}: {describe_signature(tensor_signature(t))}" + (f" shape={tuple(t.shape)}" if static else "")
        self.add(Guard(GuardKind.TENSOR_MATCH_STATIC if static else GuardKind.TENSOR_MATCH_DYNAMIC,
                       Check(code, (src,)), text,
                       str(src), actual=f"{PREFIX}describe_sig({src.code})", expected=k(expected_signature(t, kind))))

    def absent(self, src, name: str):
        """`src` has no attribute `name` (the trace took the missing branch of getattr/hasattr)."""
        self._refs(src)
        self.add(Guard(GuardKind.ABSENT, Check(f"not hasattr({FIRST}, {self.constant(name)})", (src,)),
                       f"{src} has no attribute {name!r}", str(src)))

    def key_absent(self, src, key, text: str):
        """`key` is not in the mapping at `src` (a global name that would shadow a builtin, a dict key)."""
        self._refs(src)
        self.add(Guard(GuardKind.ABSENT, Check(f"{self.constant(key)} not in {FIRST}", (src,)), text, str(src)))

    def contents_match(self, src, value, items: list):
        """A mutable container read as a whole (a set, a deque, a list subclass): its exact type, and its
        elements in iteration order with their exact types."""
        self._refs(src)
        k, typ = self.constant, type(value)
        self.add(Guard(GuardKind.CONTENTS_MATCH,
                       Check(f"type({FIRST}) is {k(typ)} and list({FIRST}) == {k(items)} and "
                             f"list(map(type, {FIRST})) == {k([type(v) for v in items])}", (src,)),
                       f"{src} == {typ.__name__}({items!r})", str(src), actual=f"list({src.code})"))

    def state_match(self, src, state):
        """An object copied as a whole (copy.deepcopy of a config): `src` computes its state, which must
        still be `state`."""
        self._refs(src)
        self.add(Guard(GuardKind.CONTENTS_MATCH, Check(f"{FIRST} == {self.constant(state)}", (src,)),
                       f"{src} is unchanged",
                       str(src), actual=src.code))

    def membership(self, src, key, result: bool):
        """`key in container` came out `result` (a set, a deque, a module dict of the caller's world)."""
        self._refs(src)
        self.add(Guard(GuardKind.CONTENTS_MATCH, Check(f"({self.constant(key)} in {FIRST}) is {result}", (src,)),
                       f"{key!r} {'in' if result else 'not in'} {src}", str(src)))

    def keys_match(self, src, value):
        """A mapping's exact type and its keys in order (named through the table: any hashable keys)."""
        self._refs(src)
        keys = list(value)
        self.add(Guard(GuardKind.TYPE_MATCH,
                       Check(f"type({FIRST}) is {self.constant(type(value))} and list({FIRST}) == {self.constant(keys)}",
                             (src,)),
                       f"type({src}) is {type(value).__qualname__} and list({src}) == {keys!r}", str(src),
                       actual=f"list({src.code})"))

    def no_instance_attributes(self, src):
        """`src` holds no attribute of its own, which could hide a method of its class (an OrderedDict has a
        __dict__)."""
        self._refs(src)
        self.add(Guard(GuardKind.ABSENT, Check(f"not vars({FIRST})", (src,)), f"{src} has no instance attributes",
                       str(src), actual=f"list(vars({src.code}))"))

    def inherits(self, cls, base, names: frozenset):
        """`cls` still uses `base`'s own `names` (`keeps_methods`: one defined on the class later is seen)."""
        check = f"{self.constant(keeps_methods)}({self.constant(cls)}, {self.constant(base)}, {self.constant(names)})"
        self.add(Guard(GuardKind.ID_MATCH, Check(check), f"{cls.__qualname__} uses {base.__qualname__}'s own methods"))

    def truth(self, src, result: bool):
        """`bool(src)` came out `result` (an object whose class's `__bool__` or `__len__` answers it)."""
        self._refs(src)
        self.add(Guard(GuardKind.TYPE_MATCH, Check(f"bool({FIRST}) is {result}", (src,)), f"bool({src}) is {result}",
                       str(src), actual=f"bool({src.code})"))

    def length(self, src, n: int):
        self._refs(src)
        self.add(Guard(GuardKind.TYPE_MATCH, Check(f"len({FIRST}) == {n}", (src,)), f"len({src}) == {n}", str(src),
                       actual=f"len({src.code})"))

    def function_match(self, src, fn):
        """A function the trace ran: its code and the number of its closure cells and defaults (the default
        values and cell contents it read are guarded by their own sources).  While the source holds the very
        function traced, its code and defaults fields are compared as they are (function_fields.py: no audited
        attribute read); another function object is checked through its attributes."""
        self._refs(src)
        n, d = len(fn.__closure__ or ()), len(fn.__defaults__ or ())
        by_attributes = (f"{FIRST}.__code__ is {self.constant(fn.__code__)} and len({FIRST}.__closure__ or ()) == {n} "
                         f"and len({FIRST}.__defaults__ or ()) == {d}")
        fields = self._fields(fn)
        check = by_attributes if fields is None else (
            f"({FIRST} is {self.constant(fn)} and {self.constant(fields.view)}.raw == {self.constant(fields.expected)}"
            f" or {by_attributes})")
        self.add(Guard(GuardKind.FUNCTION_MATCH, Check(check, (src,)),
                       f"{src} runs the code of {fn.__qualname__} ({n} cells, {d} defaults)", str(src)))

    def own_code(self, src, fn):
        """The optimized function itself: only its `__code__` can change under the cache (`__closure__` is
        read-only, and the binder reads a default when a call leaves it out).  The guard holds this function, so
        it compares its code field (function_fields.py) instead of reading the audited `__code__`."""
        self._refs(src)
        fields = self._fields(fn, ("__code__",))
        check = Check(f"{FIRST}.__code__ is {self.constant(fn.__code__)}", (src,)) if fields is None else \
            Check(f"{self.constant(fields.view)}.raw == {self.constant(fields.expected)}")
        self.add(Guard(GuardKind.FUNCTION_MATCH, check, f"{src} runs the code of {fn.__qualname__}", str(src)))

    def module_structure(self, src, module, own_forward: bool):
        """An nn.Module the trace called: its forward hooks and pre-hooks (none, or the ones traced: their ids,
        which registration makes unique), no backward hooks, the global hooks likewise, and a `forward` set on
        the instance present or absent as traced.  (Its children, parameters and buffers are guarded where they
        are read; the hooks themselves where the trace read them.)  A module without a source (one built in the
        trace) gets only the global check."""
        if src is not None:
            self._refs(src)
            forward, c = "in" if own_forward else "not in", FIRST
            fwd, pre = tuple(module._forward_hooks), tuple(module._forward_pre_hooks)
            if fwd or pre:
                hooks = (f"tuple({c}._forward_hooks) == {self.constant(fwd)} and "
                         f"tuple({c}._forward_pre_hooks) == {self.constant(pre)} and not ({c}._backward_hooks or "
                         f"{c}._backward_pre_hooks)")
                text = f"{src} has the hooks {list(pre)!r} (pre) and {list(fwd)!r}"
            else:
                hooks = (f"not ({c}._forward_hooks or {c}._forward_pre_hooks or {c}._backward_hooks or "
                         f"{c}._backward_pre_hooks)")
                text = f"{src} has no hooks"
            self.add(Guard(GuardKind.MODULE_STRUCTURE, Check(f"{hooks} and 'forward' {forward} {c}.__dict__", (src,)),
                           text + (" and its own forward" if own_forward else ""), str(src)))
        g_forward, g_pre, g_backward, g_backward_pre = global_module_hooks()
        if g_forward or g_pre:
            fwd, pre = tuple(g_forward), tuple(g_pre)
            self.add(Guard(GuardKind.MODULE_STRUCTURE,
                           Check(f"tuple({self.constant(g_forward)}) == {self.constant(fwd)} and "
                                 f"tuple({self.constant(g_pre)}) == {self.constant(pre)} and not "
                                 f"({self.constant(g_backward)} or {self.constant(g_backward_pre)})"),
                           f"the global module hooks are {list(pre)!r} (pre) and {list(fwd)!r}"))
        else:
            hooks = " or ".join(self.constant(d) for d in global_module_hooks())
            self.add(Guard(GuardKind.MODULE_STRUCTURE, Check(f"not ({hooks})"), "no global module hooks"))

    def module_keys(self, src, table: str, keys: tuple):
        """The names in one of a module's tables (`_modules`, `_parameters`, `_buffers`), in order."""
        self._refs(src)
        self.add(Guard(GuardKind.MODULE_STRUCTURE,
                       Check(f"tuple({FIRST}) == {self.constant(keys)}", (sources.attr(src, table),)),
                       f"{src}.{table} keys are {list(keys)!r}", str(src), actual=f"tuple({src.code}.{table})"))

    def walk_names(self, src, method: str, args: tuple, kwargs: dict, names: tuple):
        """`m.parameters()` & co: the names the walk yields (the whole subtree's structure)."""
        self._refs(src)
        walk = f"{FIRST}.{method}(*{self.constant(args)}, **{self.constant(kwargs)})"    # (name, object) pairs
        template = f"tuple(map({self.constant(_FIRST_OF_PAIR)}, {walk})) == {self.constant(names)}"
        self.add(Guard(GuardKind.MODULE_STRUCTURE, Check(template, (src,)), f"{src}.{method}() yields {list(names)!r}",
                       str(src)))

    def bound_method(self, src, owner, method, to_owner: bool):
        """`owner.name` (at `src`) binds `method.__func__` to `owner` itself (`to_owner`) or to its class (a
        classmethod): one check, as every read makes a new bound method."""
        self._refs(src)
        self._refs(owner)
        bound = SECOND if to_owner else self.constant(method.__self__)
        self.add(Guard(GuardKind.ID_MATCH,
                       Check(f"{FIRST}.__func__ is {self.constant(method.__func__)} and {FIRST}.__self__ is {bound}",
                             (src, owner) if to_owner else (src,)),
                       f"{src} is {method.__func__.__qualname__} bound to {owner if to_owner else 'its class'}",
                       str(src)))

    def alias(self, src, other, same: bool):
        """Two sources are (or are not) the same object, as the trace assumed."""
        self._refs(src)
        self._refs(other)
        op = "is" if same else "is not"
        self.add(Guard(GuardKind.ALIASING, Check(f"{FIRST} {op} {SECOND}", (src, other)), f"{src} {op} {other}",
                       str(src)))

    def storage_aliasing(self, sources: list, tensors: list):
        """Which of these tensor inputs share memory, as in the traced call (the graph writes one of them: a
        functionalized graph computed as if aliased inputs were distinct, or the reverse, is wrong)."""
        for src in sources:
            self._refs(src)
        groups = storage_groups(*tensors)
        shared = [str(src) for src, g in zip(sources, groups) if groups.count(g) > 1]
        text = (f"{', '.join(shared)} share memory as traced" if shared else
                f"{', '.join(map(str, sources))} share no memory")
        marks = ", ".join(mark(i) for i in range(len(sources)))
        self.add(Guard(GuardKind.ALIASING, Check(f"{PREFIX}storage_groups({marks}) == {self.constant(groups)}",
                                                 tuple(sources)), text,
                       actual=f"{PREFIX}storage_groups({', '.join(src.code for src in sources)})"))

    def static_stride(self, src, dim: int, value: int):
        self.add(Guard(GuardKind.TENSOR_MATCH_STATIC, Check(f"{FIRST}.stride({dim}) == {value}", (src,)),
                       f"{src}.stride({dim}) == {value}", str(src), actual=f"{src.code}.stride({dim})"))

    def static_dim(self, src, dim: int, value: int):
        """Dim `dim` of the tensor at `src` has one allowed value."""
        read, name = sources.dim_source(src, dim), sources.size(src, dim)
        self.add(Guard(GuardKind.TENSOR_MATCH_STATIC, Check(f"{FIRST} == {value}", (read,)), f"{name} == {value}",
                       str(src), dims=(name,), actual=read.code))

    def tensor_flag(self, src, expr: str, value: bool):
        """A flag of the tensor at `src` that the tensor guard does not pin (`is_leaf`, `_is_view()`)."""
        self.add(Guard(GuardKind.TENSOR_MATCH_DYNAMIC, Check(f"{FIRST}.{expr} is {value}", (src,)),
                       f"{src}.{expr} is {value}", str(src)))

    def global_state(self):
        """The process-wide state every entry assumes: grad mode, default dtype, inference mode, autocast,
        deterministic algorithms.  The common case (autocast and deterministic algorithms off) costs one C call each."""
        grad = torch.is_grad_enabled()
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}grad_enabled() is {grad}"), f"grad mode is {'on' if grad else 'off'}",
                       actual=f"{PREFIX}grad_enabled()"))
        k = self.constant(torch.get_default_dtype())
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}default_dtype() is {k}"),
                       f"default dtype is {torch.get_default_dtype()}", actual=f"{PREFIX}default_dtype()"))
        inference = torch.is_inference_mode_enabled()
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}inference_mode() is {inference}"),
                       f"inference mode is {'on' if inference else 'off'}", actual=f"{PREFIX}inference_mode()"))
        self._autocast_state()
        deterministic = torch._C._get_deterministic_algorithms()
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}deterministic() is {deterministic}"),
                       f"deterministic algorithms are {'on' if deterministic else 'off'}", actual=f"{PREFIX}deterministic()"))
        if deterministic:
            warn_only = torch._C._get_deterministic_algorithms_warn_only()
            self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}deterministic_warn_only() is {warn_only}"),
                           f"deterministic algorithms warn only: {warn_only}", actual=f"{PREFIX}deterministic_warn_only()"))

    def _autocast_state(self):
        if not torch._C._is_any_autocast_enabled():
            self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}any_autocast() is False"), "autocast is off", actual=f"{PREFIX}any_autocast()"))
            return
        enabled = [d for d in AUTOCAST_DEVICES if torch.is_autocast_enabled(d)]
        for device in enabled:
            dtype = torch.get_autocast_dtype(device)
            d = self.constant(device)
            self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}autocast_enabled({d}) and {PREFIX}autocast_dtype({d}) is {self.constant(dtype)}"),
                           f"autocast is on for {device} with {dtype}", actual=f"{PREFIX}autocast_dtype({d})"))
        others = " and ".join(f"not {PREFIX}autocast_enabled({self.constant(d)})" for d in AUTOCAST_DEVICES
                              if d not in enabled)
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(others or "True"), "autocast is off for other device types"))
        cache = torch.is_autocast_cache_enabled()
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{PREFIX}autocast_cache() is {cache}"),
                       f"autocast cache is {'on' if cache else 'off'}", actual=f"{PREFIX}autocast_cache()"))

    def backend_flag(self, owner, name: str, value):
        """`torch.backends.<x>.<flag>` read at trace time: the guard reads it again."""
        compare = "is" if value is None or type(value) is bool else "=="
        where = getattr(owner, "__name__", None) or type(owner).__module__
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{self.constant(owner)}.{name} {compare} {self.constant(value)}"),
                       f"{where}.{name} {compare} {value!r}", actual=f"{self.constant(owner)}.{name}"))

    def state_query(self, fn, name: str, args: list, kwargs: dict, value):
        """A query of global state answered at trace time: the guard asks again."""
        k = self.constant
        params = [k(a) for a in args] + [f"{key}={k(v)}" for key, v in kwargs.items()]
        call = f"{k(fn)}({', '.join(params)})"
        shown = ", ".join([repr(a) for a in args] + [f"{key}={v!r}" for key, v in kwargs.items()])
        compare = "is" if value is None or type(value) is bool else "=="
        self.add(Guard(GuardKind.GLOBAL_STATE, Check(f"{call} {compare} {k(value)}"), f"{name}({shown}) {compare} {value!r}",
                       actual=call))


_FIRST_OF_PAIR = operator.itemgetter(0)      # the name of a (name, object) pair a module walk yields


def storage_key(t: torch.Tensor) -> int:
    """The address of a tensor's memory block (tensors without storage count as their own block)."""
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return id(t)


def storage_groups(*tensors) -> tuple:
    """For each tensor, the position of the first tensor sharing its memory: (0, 1, 0) when the third is (a
    view of) the first.  Empty tensors may all count as one block; the trace saw the same."""
    first: dict = {}
    return tuple(first.setdefault(storage_key(t), i) for i, t in enumerate(tensors))


def global_module_hooks() -> tuple:
    """The hook dicts torch.nn applies to every module call (mutated in place by register_module_*_hook)."""
    m = torch.nn.modules.module
    return (m._global_forward_hooks, m._global_forward_pre_hooks, m._global_backward_hooks,
            m._global_backward_pre_hooks)


AUTOCAST_DEVICES = tuple(d for d in ("cpu", "cuda", "xpu", "mps", "hpu", "xla", "ipu", "mtia", "maia", "privateuseone")
                         if torch.amp.autocast_mode.is_autocast_available(d))


NATIVE_KINDS = {"static": native.EXACT, "contiguous": native.CONTIGUOUS, "strided": native.RANK}


def tensor_terms(c: str, t: torch.Tensor, kind: str, order: tuple | None, k) -> list[str]:
    """The Python terms of a tensor guard of `kind` for tensors like `t`, on the value written `c` (`k` names a
    constant).  With the exact type checked, the dispatch keys of a plain tensor vary only with inference mode
    (and conj/neg bits for complex dtypes), so those are checked instead of the slower full key set.

    Methods are called through TensorBase's own descriptors (`__pd_is_contiguous(t)`): the same C function,
    without the method lookup on the instance, which CPython 3.12+ no longer specializes for tensors.  A plain
    tensor that is not an inference tensor is checked by reading its version counter, which inference tensors
    refuse to have (the read raises, and a raising guard fails): half the cost of `is_inference()`."""
    device = f"{c}.is_cpu" if t.device.type == "cpu" else f"{c}.device == {k(t.device)}"
    inference = f"{c}._version >= 0" if type(t) is torch.Tensor and not t.is_inference() else \
        f"{PREFIX}is_inference({c}) is {t.is_inference()}"
    checks = [f"type({c}) is {k(type(t))}", f"{c}.dtype is {k(t.dtype)}", device,
              f"{c}.requires_grad is {t.requires_grad}", inference]
    if t.is_complex():
        checks += [f"{c}.is_conj() is {t.is_conj()}", f"{c}.is_neg() is {t.is_neg()}"]
    if kind == "static":
        checks += [f"{c}.shape == {k(t.shape)}", f"{c}.stride() == {tuple(t.stride())!r}",
                   f"{PREFIX}storage_offset({c}) == {t.storage_offset()}"]
    elif kind == "strided":
        checks.append(f"{c}.ndim == {t.dim()}")
    else:
        dense = f"{PREFIX}is_contiguous({c})" if kind == "contiguous" else f"{c}.permute({order!r}).is_contiguous()"
        checks += [f"{c}.ndim == {t.dim()}", dense, f"{PREFIX}storage_offset({c}) == 0"]
    return checks


def tensor_signature(t: torch.Tensor) -> tuple:
    """Everything a trace may assume about a tensor, for explaining a failed tensor guard."""
    return (type(t), t.dtype, t.device, t.layout, t.requires_grad, t.dim(), t.is_contiguous(), t.is_inference(),
            torch._C._dispatch_keys(t).raw_repr(), tuple(t.shape), tuple(t.stride()), t.storage_offset(),
            dense_order(t))


_SIG_FIELDS = ("type", "dtype", "device", "layout", "requires_grad", "ndim", "contiguous", "inference tensor",
               "dispatch keys", "shape", "stride", "storage offset", "dense order")


class _Unchecked:
    """A field of an expected signature that the tensor guard does not check (`expected_signature`)."""

    def __repr__(self):
        return "unchecked"


UNCHECKED = _Unchecked()
# the signature fields each kind of tensor guard leaves to other guards (sizes, strides) or does not need
_UNCHECKED_FIELDS = {
    "static": ("dense order",),
    "contiguous": ("shape", "stride", "dense order"),
    "permuted": ("contiguous", "shape", "stride"),
    "strided": ("contiguous", "shape", "stride", "storage offset", "dense order"),
}


def expected_signature(t: torch.Tensor, kind: str) -> tuple:
    """`t`'s signature with the fields a `kind` tensor guard does not check marked UNCHECKED, so a failure
    names a property the guard checked (not the shape of a tensor whose sizes are symbolic)."""
    return tuple(UNCHECKED if name in _UNCHECKED_FIELDS[kind] else value
                 for name, value in zip(_SIG_FIELDS, tensor_signature(t)))


def dense_order(t: torch.Tensor) -> tuple[int, ...] | None:
    """How a tensor that can have symbolic sizes lays out its dims: `range(ndim)` for a contiguous tensor, the
    permutation that makes it contiguous for a permuted view of a contiguous block (`x.transpose(0, 1)`, `x.mT`,
    `x.permute(...)`: the fake tensor's strides are then products of its sizes, and the guard asks the same
    permutation of the next input to be contiguous); None for any other layout (a storage offset, gaps,
    overlaps, an empty dim, not strided: shapes.fake.strided_layout says which have symbolic strides)."""
    if t.layout != torch.strided or t.storage_offset() != 0:
        return None
    if t.is_contiguous():
        return tuple(range(t.dim()))
    if 0 in t.shape:
        return None
    # dims of size 1 have no meaningful stride (is_contiguous ignores it): they go last
    order = tuple(sorted(range(t.dim()), key=lambda d: (t.size(d) == 1, -t.stride(d), d)))
    return order if t.permute(order).is_contiguous() else None


def describe_signature(sig: tuple) -> str:
    typ, dtype, device, layout, rg, ndim, contiguous = sig[:7]
    return (f"{typ.__name__} {str(dtype).replace('torch.', '')} {device} ndim={ndim}"
            f"{' requires_grad' if rg else ''}{'' if contiguous else ' non-contiguous'}")


def signature_difference(expected: tuple, actual) -> str:
    if not isinstance(actual, tuple):
        return f"got {actual}"
    for name, e, a in zip(_SIG_FIELDS, expected, actual):
        if e is not UNCHECKED and e != a:
            show = (lambda v: v.__name__) if name == "type" else repr
            if name == "dense order":
                got = ("another layout" if a is None else "a contiguous block" if a == tuple(range(len(a)))
                       else f"the permutation {a!r}")
                return f"a permutation {e!r} of a contiguous block expected, got {got}"
            return f"{name} {show(e)} expected, got {show(a)}"
    return "differs"


def is_true(expr) -> bool:
    return expr is sympy.true or expr == sympy.true
