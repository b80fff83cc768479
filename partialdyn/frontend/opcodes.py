"""One handler per CPython opcode, over trackers.

Each handler takes the frame and the instruction and changes the frame's stack,
locals or instruction pointer.  Its registration (`handles`) also declares the
CPython versions the opcode exists in (`since=`, `until=`: registered only
there) and how it behaves at a graph break (`at_break=`, see `breaks.py`: the
runtime reads it from `AT_BREAK`).  What an opcode does to the values it takes is an operation of
`protocol.py` (attribute, call, operators, item assignment ...) or a function of `values.py`
(unary operators, `not`, identity, hashing, `**` unpacking, container mutation).
"""
from __future__ import annotations

import operator

from bytecode import BinaryOp, Compare
from bytecode.instr import CellVar, FormatValue, FreeVar

from . import generators
from . import protocol
from . import reads
from . import values
from . import breaks
from .. import trackers
from ..errors import GraphBreak, Unsupported, UserError
from .breaks import AtBreak
from .instructions import CONDITIONAL_JUMPS, NONE_JUMPS, NULL_AFTER_CALLABLE, OR_POP_JUMPS, applies
from .outcomes import RETURN, YIELD

BINARY = {
    BinaryOp.ADD: operator.add, BinaryOp.SUBTRACT: operator.sub, BinaryOp.MULTIPLY: operator.mul,
    BinaryOp.TRUE_DIVIDE: operator.truediv, BinaryOp.FLOOR_DIVIDE: operator.floordiv,
    BinaryOp.REMAINDER: operator.mod, BinaryOp.POWER: operator.pow, BinaryOp.MATRIX_MULTIPLY: operator.matmul,
    BinaryOp.LSHIFT: operator.lshift, BinaryOp.RSHIFT: operator.rshift, BinaryOp.AND: operator.and_,
    BinaryOp.OR: operator.or_, BinaryOp.XOR: operator.xor,
    BinaryOp.INPLACE_ADD: operator.iadd, BinaryOp.INPLACE_SUBTRACT: operator.isub,
    BinaryOp.INPLACE_MULTIPLY: operator.imul, BinaryOp.INPLACE_TRUE_DIVIDE: operator.itruediv,
    BinaryOp.INPLACE_FLOOR_DIVIDE: operator.ifloordiv, BinaryOp.INPLACE_REMAINDER: operator.imod,
    BinaryOp.INPLACE_POWER: operator.ipow, BinaryOp.INPLACE_MATRIX_MULTIPLY: operator.imatmul,
    BinaryOp.INPLACE_LSHIFT: operator.ilshift, BinaryOp.INPLACE_RSHIFT: operator.irshift,
    BinaryOp.INPLACE_AND: operator.iand, BinaryOp.INPLACE_OR: operator.ior, BinaryOp.INPLACE_XOR: operator.ixor,
}
COMPARE = {Compare.LT: operator.lt, Compare.LE: operator.le, Compare.EQ: operator.eq,
           Compare.NE: operator.ne, Compare.GT: operator.gt, Compare.GE: operator.ge}
# 3.13 fuses a TO_BOOL into the comparison before a jump or `not` (the _CAST forms): the tracer leaves the truth test
# to that consumer, as it does for TO_BOOL; at a break the comparison runs in Python and casts
COMPARE_CAST = {getattr(Compare, f"{c.name}_CAST"): op for c, op in COMPARE.items() if hasattr(Compare, f"{c.name}_CAST")}
CONVERSIONS = {FormatValue.STR: str, FormatValue.REPR: repr, FormatValue.ASCII: ascii}


def _compare_at_break(arg):
    if arg in COMPARE_CAST:
        return lambda a, b: bool(COMPARE_CAST[arg](a, b))
    return COMPARE[arg]
UNARY = {"UNARY_NEGATIVE": operator.neg, "UNARY_POSITIVE": operator.pos, "UNARY_INVERT": operator.invert}

HANDLERS = {}      # opcode name -> handler, for the running CPython's opcodes only
AT_BREAK: dict[str, AtBreak] = {}     # opcode name -> its behaviour at a graph break
WORDS: dict[str, str] = {}            # opcode name -> what it does, in words, for the provenance of its guards


def handles(*names, since=(3, 11), until=None, at_break: AtBreak = breaks.EAGER, words: str | None = None):
    """Register the decorated handler for `names`, which exist from CPython `since` up to (not including)
    `until`."""
    def register(fn):
        if applies(since, until):
            for name in names:
                HANDLERS[name] = fn
                AT_BREAK[name] = at_break
                if words is not None:
                    WORDS[name] = words
        return fn
    return register


# ---------------------------------------------------------------- no-ops and the stack
@handles("NOP", "RESUME", "COPY_FREE_VARS", "EXTENDED_ARG")
@handles("PRECALL", until=(3, 12), words="call")
def nop(f, i):
    pass


@handles("POP_TOP")
def pop_top(f, i):
    f.pop()


@handles("PUSH_NULL")
def push_null(f, i):
    f.push(trackers.NULL)


@handles("COPY")
def copy(f, i):
    f.push(f.stack[-i.arg])


@handles("SWAP")
def swap(f, i):
    f.stack[-1], f.stack[-i.arg] = f.stack[-i.arg], f.stack[-1]


# ---------------------------------------------------------------- names
@handles("LOAD_FAST")
def load_fast(f, i):
    push_local(f, i.arg)


@handles("LOAD_FAST_CHECK", since=(3, 12))
def load_fast_check(f, i):
    load_fast(f, i)


@handles("LOAD_FAST_AND_CLEAR", since=(3, 12))
def load_fast_and_clear(f, i):
    """An inlined comprehension hides the enclosing frame's variable of the same name (NULL when unbound)."""
    f.push(f.locals.pop(i.arg, trackers.NULL))


@handles("STORE_FAST")
def store_fast(f, i):
    store_local(f, i.arg)


def store_local(f, name):
    value = f.pop()
    if value is trackers.NULL:          # 3.12: an inlined comprehension restores a variable that was unbound
        f.locals.pop(name, None)
    else:
        f.locals[name] = value


def push_local(f, name):
    # 3.13 loads a cell for a closure with the LOAD_FAST family (`bytecode` names the cell of an argument by the
    # argument's name: the two share a slot)
    cell = name.name if isinstance(name, (CellVar, FreeVar)) else name if name not in f.locals else None
    if cell in f.cells:
        f.captured.add(cell)
        f.push(f.cells[cell])
        return
    if name not in f.locals:
        raise Unsupported(f"local {name!r} is unbound here (UnboundLocalError in Python)")
    f.push(f.locals[name])


@handles("LOAD_FAST_LOAD_FAST", since=(3, 13))
def load_fast_load_fast(f, i):
    for name in i.arg:
        push_local(f, name)


@handles("STORE_FAST_LOAD_FAST", since=(3, 13))
def store_fast_load_fast(f, i):
    store_local(f, i.arg[0])
    push_local(f, i.arg[1])


@handles("STORE_FAST_STORE_FAST", since=(3, 13))
def store_fast_store_fast(f, i):
    """The first name takes the top of the stack."""
    for name in i.arg:
        store_local(f, name)


@handles("DELETE_FAST")
def delete_fast(f, i):
    f.locals.pop(i.arg, None)


@handles("LOAD_CONST")
def load_const(f, i):
    f.push(trackers.Known(i.arg))


@handles("LOAD_GLOBAL", words="global read")
def load_global(f, i):
    push_null, name = i.arg
    if push_null and not NULL_AFTER_CALLABLE:
        f.push(trackers.NULL)
    f.push(reads.global_name(f, name))
    if push_null and NULL_AFTER_CALLABLE:
        f.push(trackers.NULL)


@handles("MAKE_CELL")
def make_cell(f, i):
    name = i.arg.name
    f.cells[name] = trackers.Cell(f.locals.pop(name, None))


@handles("LOAD_DEREF", words="closure read")
@handles("LOAD_CLASSDEREF", until=(3, 12), words="closure read")
def load_deref(f, i):
    cell = f.cells[i.arg.name]
    if cell.contents is None:
        raise Unsupported(f"free variable {i.arg.name!r} is unbound")
    f.push(cell.contents)


@handles("STORE_DEREF")
def store_deref(f, i):
    cell = f.cells[i.arg.name]
    if cell.source is not None:
        raise GraphBreak(f"assignment to the closure variable {i.arg.name!r} of the traced function")
    cell.contents = f.pop()


@handles("LOAD_CLOSURE")
def load_closure(f, i):
    f.captured.add(i.arg.name)
    f.push(f.cells[i.arg.name])


# ---------------------------------------------------------------- attributes and items
@handles("LOAD_ATTR", until=(3, 12), words="attribute read",
         at_break=breaks.stack_op(lambda name: lambda obj: getattr(obj, name), 1))
def load_attr(f, i):
    f.push(protocol.attribute(f, f.pop(), i.arg))


@handles("LOAD_ATTR", since=(3, 12), words="attribute read", at_break=breaks.stack_op(
    lambda arg: lambda obj: getattr(obj, arg[1]), 1, pushes_null=lambda arg: arg[0]))
def load_attr_or_method(f, i):
    """From 3.12 the arg's flag asks for NULL next to the attribute (below it until 3.13, like 3.11's
    LOAD_METHOD; above it from 3.13)."""
    push_null, name = i.arg
    obj = f.pop()
    push_attribute(f, protocol.attribute(f, obj, name), push_null)


def push_attribute(f, value, push_null):
    """Push a callable with the NULL a call expects next to it when `push_null`."""
    if push_null and not NULL_AFTER_CALLABLE:
        f.push(trackers.NULL)
    f.push(value)
    if push_null and NULL_AFTER_CALLABLE:
        f.push(trackers.NULL)


def _super_lookup(load_method_and_form):
    """LOAD_SUPER_ATTR's Python operation: `super(cls, obj).name`; the zero-argument form calls a `super` that
    is not the builtin with no arguments, as CPython does."""
    _, two_arguments, name = load_method_and_form

    def lookup(super_, cls, obj):
        return getattr(super_(cls, obj) if two_arguments or super_ is super else super_(), name)
    return lookup


@handles("LOAD_SUPER_ATTR", since=(3, 12), words="attribute read",
         at_break=breaks.stack_op(_super_lookup, 3, pushes_null=lambda arg: arg[0]))
def load_super_attr(f, i):
    """3.12: `super().name` / `super(cls, obj).name` from the global `super`, the class and the first argument
    the compiler loaded; the flag asks for NULL below the attribute, as LOAD_ATTR's does."""
    load_method, two_arguments, name = i.arg
    super_, cls, obj = f.popn(3)
    builtin = isinstance(super_, trackers.Known) and super_.value is super
    sup = protocol.call(f, super_, [cls, obj] if two_arguments or builtin else [], {})
    push_attribute(f, protocol.attribute(f, sup, name), load_method)


@handles("LOAD_METHOD", until=(3, 12), words="attribute read",
         at_break=breaks.stack_op(lambda name: lambda obj: getattr(obj, name), 1, pushes_null=lambda name: True))
def load_method(f, i):
    obj = f.pop()
    f.push(trackers.NULL)
    f.push(protocol.attribute(f, obj, i.arg))


@handles("STORE_ATTR", at_break=breaks.stack_op(lambda name: lambda value, obj: setattr(obj, name, value), 2))
def store_attr(f, i):
    obj, value = f.stack[-1], f.stack[-2]
    protocol.store_attribute(f, obj, i.arg, value)
    f.popn(2)


@handles("DELETE_ATTR")
def delete_attr(f, i):
    protocol.store_attribute(f, f.stack[-1], i.arg, None)
    f.pop()


@handles("BINARY_SUBSCR", at_break=breaks.stack_op(lambda arg: operator.getitem, 2), words="indexing")
def binary_subscr(f, i):
    index = f.pop()
    f.push(protocol.subscript(f, f.pop(), index))


@handles("STORE_SUBSCR", words="item assignment", at_break=breaks.stack_op(
    lambda arg: lambda value, container, key: operator.setitem(container, key, value), 3))
def store_subscr(f, i):
    key, container, value = f.stack[-1], f.stack[-2], f.stack[-3]
    protocol.store_subscript(f, container, key, value)
    f.popn(3)


@handles("BINARY_SLICE", since=(3, 12), words="indexing")
def binary_slice(f, i):
    start, stop = f.popn(2)
    build_slice_of(f, [start, stop])
    index = f.pop()
    f.push(protocol.subscript(f, f.pop(), index))


@handles("STORE_SLICE", since=(3, 12), words="item assignment")
def store_slice(f, i):
    start, stop = f.popn(2)
    build_slice_of(f, [start, stop])
    store_subscr(f, i)


@handles("DELETE_SUBSCR")
def delete_subscr(f, i):
    key, container = f.stack[-1], f.stack[-2]
    if isinstance(container, (trackers.List, trackers.Dict)) and isinstance(key, trackers.Known) and not isinstance(key.value, slice):
        values.mutate(f, container)
        del container.items[key.value]
        f.popn(2)
        return
    raise GraphBreak("del on a container from outside the trace")


@handles("BUILD_SLICE")
def build_slice(f, i):
    build_slice_of(f, f.popn(i.arg))


def build_slice_of(f, parts):
    parts = parts + [trackers.Known(None)] * (3 - len(parts))
    if all(isinstance(p, trackers.Known) for p in parts):
        f.push(trackers.Known(slice(*[p.value for p in parts])))
    else:
        f.push(trackers.Slice(*parts))


# ---------------------------------------------------------------- operators
@handles("BINARY_OP", at_break=breaks.stack_op(BINARY.__getitem__, 2), words="arithmetic")
def binary_op(f, i):
    b = f.pop()
    a = f.pop()
    f.push(protocol.binary(f, BINARY[i.arg], a, b))


@handles("COMPARE_OP", words="comparison", at_break=breaks.stack_op(_compare_at_break, 2))
def compare_op(f, i):
    b = f.pop()
    a = f.pop()
    f.push(protocol.binary(f, COMPARE_CAST.get(i.arg) or COMPARE[i.arg], a, b))


@handles("TO_BOOL", since=(3, 13), at_break=breaks.stack_op(lambda arg: bool, 1))
def to_bool(f, i):
    """3.13: the value stays as it is: the jump or `not` that always follows tests its truth (and names the use
    in guard provenance)."""


@handles("IS_OP", words="identity test",
         at_break=breaks.stack_op(lambda negated: lambda a, b: (a is b) != bool(negated), 2))
def is_op(f, i):
    b = f.pop()
    a = f.pop()
    same = values.identical(f, a, b)
    f.push(trackers.Known(same != bool(i.arg)))


@handles("CONTAINS_OP", words="`in` test", at_break=breaks.stack_op(
    lambda negated: lambda item, container: (item in container) != bool(negated), 2))
def contains_op(f, i):
    container = f.pop()
    item = f.pop()
    f.push(trackers.Known(protocol.contains(f, container, item) != bool(i.arg)))


@handles("UNARY_NEGATIVE", at_break=breaks.stack_op(lambda arg: operator.neg, 1))
@handles("UNARY_INVERT", at_break=breaks.stack_op(lambda arg: operator.invert, 1))
@handles("UNARY_POSITIVE", until=(3, 12), at_break=breaks.stack_op(lambda arg: operator.pos, 1))
def unary(f, i):
    f.push(values.unary(f, UNARY[i.name], f.pop()))


@handles("UNARY_NOT", at_break=breaks.stack_op(lambda arg: operator.not_, 1))
def unary_not(f, i):
    f.push(values.logical_not(f, f.pop()))


# ---------------------------------------------------------------- building containers
@handles("BUILD_TUPLE")
def build_tuple(f, i):
    f.push(trackers.Tuple(f.popn(i.arg)))


@handles("BUILD_LIST")
def build_list(f, i):
    f.push(trackers.List(f.popn(i.arg)))


@handles("BUILD_SET")
def build_set(f, i):
    items = f.popn(i.arg)
    f.push(trackers.Known(set(values.hashable_values(f, items, "a set element"))))


@handles("BUILD_MAP")
def build_map(f, i):
    flat = f.popn(2 * i.arg)
    keys = values.hashable_values(f, flat[0::2], "a dict key")
    f.push(trackers.Dict(dict(zip(keys, flat[1::2]))))


@handles("BUILD_CONST_KEY_MAP")
def build_const_key_map(f, i):
    keys = f.pop().value
    f.push(trackers.Dict(dict(zip(keys, f.popn(i.arg)))))


@handles("BUILD_STRING", words="str formatting")
def build_string(f, i):
    parts = values.constant_values(f.popn(i.arg), "an f-string part")
    f.push(trackers.Known("".join(parts)))


@handles("FORMAT_VALUE", until=(3, 13), words="str formatting")
def format_value(f, i):
    spec = f.pop().value if i.arg & 0x04 else ""
    value = protocol.python_value(f, f.pop(), "str formatting")
    conv = {0: None, 1: str, 2: repr, 3: ascii}[i.arg & 0x03]
    f.push(trackers.Known(format(conv(value) if conv else value, spec)))


@handles("CONVERT_VALUE", since=(3, 13), words="str formatting")
def convert_value(f, i):
    value = protocol.python_value(f, f.pop(), "str formatting")
    f.push(trackers.Known(CONVERSIONS[i.arg](value)))


@handles("FORMAT_SIMPLE", since=(3, 13), words="str formatting")
def format_simple(f, i):
    f.push(trackers.Known(format(protocol.python_value(f, f.pop(), "str formatting"), "")))


@handles("FORMAT_WITH_SPEC", since=(3, 13), words="str formatting")
def format_with_spec(f, i):
    spec = f.pop().value
    f.push(trackers.Known(format(protocol.python_value(f, f.pop(), "str formatting"), spec)))


@handles("LIST_APPEND")
def list_append(f, i):
    item = f.pop()
    values.mutate(f, f.stack[-i.arg])
    f.stack[-i.arg].items.append(item)


@handles("SET_ADD")
def set_add(f, i):
    item = f.pop()
    target = f.stack[-i.arg]
    target.value.add(values.hashable_values(f, [item], "a set element")[0])


@handles("MAP_ADD")
def map_add(f, i):
    value = f.pop()
    key = f.pop()
    values.mutate(f, f.stack[-i.arg])
    f.stack[-i.arg].items[values.hashable_values(f, [key], "a dict key")[0]] = value


@handles("LIST_EXTEND")
def list_extend(f, i):
    items = protocol.iterate(f, f.pop())
    values.mutate(f, f.stack[-i.arg])
    f.stack[-i.arg].items.extend(items)


@handles("SET_UPDATE")
def set_update(f, i):
    items = values.hashable_values(f, protocol.iterate(f, f.pop()), "a set element")
    f.stack[-i.arg].value.update(items)


@handles("STORE_GLOBAL")
def store_global(f, i):
    """Recorded like an attribute write on the module's globals, replayed after the graph."""
    if f.globals is not f.trace.globals:
        raise GraphBreak(f"assignment to the global {i.arg!r} of another module", hint="it runs in Python")
    if reads.held_dict(f, f.globals) is not None:
        # the dict the trace holds would not see the assignment (replayed after the graph)
        raise GraphBreak(f"assignment to the global {i.arg!r} while the trace holds the globals dict as a dict",
                         hint="it runs in Python")
    f.trace.side_effects.write(f.trace.globals_owner, i.arg, f.pop())


@handles("LIST_TO_TUPLE", until=(3, 12))
def list_to_tuple(f, i):
    f.push(trackers.Tuple(list(f.pop().items)))


INTRINSIC_1 = {"INTRINSIC_LIST_TO_TUPLE": list_to_tuple,
               "INTRINSIC_UNARY_POSITIVE": lambda f, i: f.push(values.unary(f, operator.pos, f.pop()))}


# PEP 695 type parameters and aliases made by traced code (`def f[T]`, `class C[T]`, `type A = ...` inside the
# function): Python makes fresh ones per call with lazily evaluated bounds and values, which the trace cannot
# rebuild, so the definition runs in Python (a generic defined outside the function is just a value).
TYPE_PARAMETER_INTRINSICS = {"INTRINSIC_TYPEVAR", "INTRINSIC_PARAMSPEC", "INTRINSIC_TYPEVARTUPLE",
                             "INTRINSIC_SUBSCRIPT_GENERIC", "INTRINSIC_TYPEALIAS", "INTRINSIC_TYPEVAR_WITH_BOUND",
                             "INTRINSIC_TYPEVAR_WITH_CONSTRAINTS", "INTRINSIC_SET_FUNCTION_TYPE_PARAMS"}


def _intrinsic(f, i, table):
    name = i.arg.name
    if name in TYPE_PARAMETER_INTRINSICS:
        raise GraphBreak("a PEP 695 type parameter or type alias defined in traced code (def f[T], class C[T], "
                         "type A = ...)", hint="the definition runs in Python; define generics outside the function")
    if name == "INTRINSIC_PREP_RERAISE_STAR":
        raise Unsupported("an except* handler (the tracer does not enter exception handlers)")
    handler = table.get(name)
    if handler is None:
        raise Unsupported(f"{i.name} {name} is not supported")
    handler(f, i)


@handles("CALL_INTRINSIC_1", since=(3, 12))
def call_intrinsic_1(f, i):
    _intrinsic(f, i, INTRINSIC_1)


@handles("CALL_INTRINSIC_2", since=(3, 12))
def call_intrinsic_2(f, i):
    """3.12: `except*`'s re-raise and PEP 695 definitions, none traced (`_intrinsic` says why)."""
    _intrinsic(f, i, {})


@handles("PREP_RERAISE_STAR", until=(3, 12))
def prep_reraise_star(f, i):
    """3.11's `except*` re-raise: only inside a handler, which the tracer never enters."""
    raise Unsupported("an except* handler (the tracer does not enter exception handlers)")


@handles("DICT_UPDATE", "DICT_MERGE")
def dict_update(f, i):
    other = f.pop()
    target = f.stack[-i.arg]
    values.mutate(f, target)
    target.items.update(values.dict_items(f, other))


@handles("UNPACK_SEQUENCE", words="unpacking")
def unpack_sequence(f, i):
    items = protocol.iterate(f, f.pop())
    if len(items) != i.arg:
        raise Unsupported(f"unpacking {len(items)} values into {i.arg}")
    f.stack.extend(reversed(items))


@handles("UNPACK_EX", words="unpacking")
def unpack_ex(f, i):
    before, after = i.arg & 0xFF, i.arg >> 8
    items = protocol.iterate(f, f.pop())
    if len(items) < before + after:
        raise Unsupported("not enough values to unpack")
    middle = trackers.List(items[before:len(items) - after])
    f.stack.extend(reversed(items[:before] + [middle] + items[len(items) - after:]))


# ---------------------------------------------------------------- calls and functions
@handles("KW_NAMES", until=(3, 13))
def kw_names(f, i):
    f.kw_names = i.arg


@handles("CALL", words="call",
         at_break=AtBreak(breaks.BreakKind.CALL, pops=lambda argc: argc + 2))
def call(f, i):
    names = f.kw_names or ()
    f.kw_names = None
    call_with_names(f, i.arg, names)


@handles("CALL_KW", since=(3, 13), words="call",
         at_break=AtBreak(breaks.BreakKind.CALL_KW, pops=lambda argc: argc + 3))
def call_kw(f, i):
    """3.13: the keyword names are a tuple on top of the stack."""
    call_with_names(f, i.arg, f.pop().value)


def call_with_names(f, n, names):
    """CALL n: the callable and NULL (or self) under n arguments, the last len(names) of them by keyword."""
    args = f.popn(n)
    upper, lower = f.pop(), f.pop()
    fn, args = callable_and_args(lower, upper, args)
    positional = args[:len(args) - len(names)]
    kwargs = dict(zip(names, args[len(args) - len(names):]))
    f.push(protocol.call(f, fn, positional, kwargs))


def callable_and_args(lower, upper, args):
    """The callee and its arguments from the two slots under a call's arguments (NULL or self in one of them)."""
    if NULL_AFTER_CALLABLE:
        return (lower, args) if upper is trackers.NULL else (lower, [upper] + args)
    return (upper, args) if lower is trackers.NULL else (lower, [upper] + args)


@handles("CALL_FUNCTION_EX", words="call", at_break=AtBreak(
    breaks.BreakKind.CALL_EX, pops=lambda flags: 3 + (flags & 1), null_optional=not NULL_AFTER_CALLABLE))
def call_function_ex(f, i):
    """Until 3.13 the NULL under the callable may be absent; from 3.13 a NULL is always above it."""
    kwargs = values.dict_items(f, f.pop()) if i.arg & 1 else {}
    args = protocol.iterate(f, f.pop())
    fn = f.pop()
    if fn is trackers.NULL:
        fn = f.pop()
    elif f.stack and f.stack[-1] is trackers.NULL:
        f.pop()
    f.push(protocol.call(f, fn, args, kwargs))


@handles("MAKE_FUNCTION", until=(3, 13))
def make_function(f, i):
    code = f.pop().value
    closure = tuple(f.pop().items) if i.arg & 0x08 else ()
    if i.arg & 0x04:
        f.pop()                                  # annotations
    kwdefaults = values.dict_items(f, f.pop()) if i.arg & 0x02 else {}
    defaults = tuple(protocol.iterate(f, f.pop())) if i.arg & 0x01 else ()
    f.push(trackers.Function(code, f.globals, code.co_name, defaults, kwdefaults, closure))


@handles("MAKE_FUNCTION", since=(3, 13))
def make_plain_function(f, i):
    """3.13: a function from the code alone; SET_FUNCTION_ATTRIBUTE adds defaults and closure."""
    code = f.pop().value
    f.push(trackers.Function(code, f.globals, code.co_name))


FUNCTION_ATTRIBUTES = {0x01: lambda f, fn, value: setattr(fn, "defaults", tuple(protocol.iterate(f, value))),
                       0x02: lambda f, fn, value: setattr(fn, "kwdefaults", values.dict_items(f, value)),
                       0x04: lambda f, fn, value: None,          # annotations
                       0x08: lambda f, fn, value: setattr(fn, "closure", tuple(value.items))}


@handles("SET_FUNCTION_ATTRIBUTE", since=(3, 13))
def set_function_attribute(f, i):
    fn = f.pop()
    value = f.pop()
    FUNCTION_ATTRIBUTES[i.arg](f, fn, value)
    f.push(fn)


@handles("RETURN_VALUE", words="return")
def return_value(f, i):
    f.return_value = f.pop()
    return RETURN


@handles("RETURN_CONST", since=(3, 12), words="return")
def return_const(f, i):
    f.return_value = trackers.Known(i.arg)
    return RETURN


@handles("RETURN_GENERATOR")
def return_generator(f, i):
    """Calling a generator function returns the generator, its frame suspended before the body."""
    if f.parent is None:
        raise Unsupported("optimizing a generator function")
    f.return_value = generators.start(f)
    return RETURN


@handles("YIELD_VALUE")
def yield_value(f, i):
    """The frame stops here; resuming it pushes the value sent in (generators.resume)."""
    f.return_value = f.pop()
    return YIELD


@handles("GET_YIELD_FROM_ITER")
def get_yield_from_iter(f, i):
    f.push(generators.make_iterator(f, f.pop()))


def _delegate(f, inner, sent):
    """`yield from`: pass the sent value to the inner iterator: (True, what it yields) or (False, its return
    value)."""
    if isinstance(inner, trackers.Generator):
        return generators.resume(f, inner, sent)
    if values.is_none(sent):
        value = generators.step(f, inner)
        return value is not None, value if value is not None else trackers.Known(None)
    raise Unsupported(f"send() into a {inner.python_type().__name__} by yield from")


@handles("SEND", until=(3, 12))
def send(f, i):
    """3.11: the inner iterator's return value replaces it on the stack and ends the loop."""
    sent = f.pop()
    yielded, value = _delegate(f, f.stack[-1], sent)
    if not yielded:
        f.pop()
        f.jump()
    f.push(value)


@handles("SEND", since=(3, 12))
def send_to_end_send(f, i):
    """3.12: the inner iterator stays on the stack under what it yields or returns; its return jumps to
    END_SEND."""
    yielded, value = _delegate(f, f.stack[-2], f.stack[-1])
    f.stack[-1] = value
    if not yielded:
        f.jump()


@handles("END_SEND", since=(3, 12))
def end_send(f, i):
    del f.stack[-2]


# ---------------------------------------------------------------- control flow
@handles("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
def jump(f, i):
    f.jump()


def _conditional(f, i):
    value = f.pop()
    if protocol.truth(f, value, "if") == CONDITIONAL_JUMPS[i.name]:
        f.jump()


def _none_jump(f, i):
    value = f.pop()
    if values.is_none(value) == NONE_JUMPS[i.name]:
        f.jump()


def _or_pop(f, i):
    value = f.stack[-1]
    if protocol.truth(f, value, "and/or") == OR_POP_JUMPS[i.name]:
        f.jump()
    else:
        f.pop()


for _name, _jump_if in CONDITIONAL_JUMPS.items():
    handles(_name, at_break=breaks.branch(_jump_if), words="if")(_conditional)
handles(*NONE_JUMPS, words="is None test")(_none_jump)
for _name, _jump_if in OR_POP_JUMPS.items():
    handles(_name, until=(3, 12), at_break=breaks.branch(_jump_if), words="and/or")(_or_pop)


@handles("FOR_ITER", since=(3, 12), until=(3, 13), at_break=breaks.FOR_ITER, words="iteration")
def for_iter_skipping_end_for(f, i):
    """3.12: an exhausted loop pops the iterator and jumps past the END_FOR at its target."""
    for_iter(f, i)
    if f.ip == f.decoded.targets[f.current]:
        f.ip += 1


@handles("FOR_ITER", since=(3, 13), at_break=breaks.FOR_ITER, words="iteration")
def for_iter_skipping_end_for_pop_top(f, i):
    """3.13: an exhausted loop pops the iterator and jumps past the END_FOR and POP_TOP at its target."""
    for_iter(f, i)
    if f.ip == f.decoded.targets[f.current]:
        f.ip += 2


@handles("END_FOR", since=(3, 12), until=(3, 13))
def end_for(f, i):
    f.popn(2)


@handles("END_FOR", since=(3, 13))
def end_for_popping_one(f, i):
    f.pop()


@handles("GET_ITER", at_break=breaks.stack_op(lambda arg: iter, 1), words="iteration")
def get_iter(f, i):
    f.push(generators.make_iterator(f, f.pop()))


@handles("FOR_ITER", until=(3, 12), at_break=breaks.FOR_ITER, words="iteration")
def for_iter(f, i):
    it = f.stack[-1]
    if not generators.is_iterator(it):
        kind = it.python_type().__name__.removesuffix("_iterator")
        raise GraphBreak(f"a for loop over a {kind} iterator made outside the traced code (e.g. at a graph break)",
                         hint="each loop step runs in Python and the body resumes compiled")
    item = generators.step(f, it)
    if item is not None:
        f.push(item)
    else:
        f.pop()
        f.jump()


# ---------------------------------------------------------------- with blocks and raise
@handles("BEFORE_WITH", words="with")
def before_with(f, i):
    exit_, value = protocol.enter(f, f.pop())
    f.push(exit_)
    f.push(value)


@handles("RAISE_VARARGS", at_break=breaks.RAISE)
def raise_varargs(f, i):
    """A bare `raise` inside a traced handler re-raises the exception it handles; any other raise is a break
    (inside a traced handler: the tracer stops where the handled exception was raised, tracer.Frame._rewind)."""
    handled = _handled_exception(f)
    if i.arg == 0 and handled is not None:
        raise UserError(handled.value)
    raise GraphBreak("raise statement", hint="the exception is raised by Python after the graph ran")


def _handled_exception(f):
    """sys.exc_info()[1] at this point of the traced code if a handler of this frame runs (None otherwise: a
    bare raise in a function called from a handler is a break, like any raise)."""
    return f.handling[-1] if f.handling else None


# ---------------------------------------------------------------- exception handlers (tracer.Frame._catch enters them)
class _PreviousException:
    """What PUSH_EXC_INFO saves under the exception: the exception handled before the handler ran, which
    POP_EXCEPT restores.  The trace never reads or rebuilds it (a break inside a handler stops before it)."""

    def __repr__(self):
        return "<previous exception>"


PREVIOUS_EXCEPTION = trackers.Known(_PreviousException())


@handles("PUSH_EXC_INFO")
def push_exc_info(f, i):
    exc = f.pop()
    f.push(PREVIOUS_EXCEPTION)
    f.push(exc)
    f.handling.append(exc)


@handles("POP_EXCEPT")
def pop_except(f, i):
    f.pop()
    f.handling.pop()
    if not f.handling and f.parent is None:
        f.rewind = None                  # the handler is done: a later break resumes normally


@handles("CHECK_EXC_MATCH")
def check_exc_match(f, i):
    """`except T:` / `except (T1, T2):`: is the exception (left on the stack) an instance of T?"""
    kinds, exc = f.pop(), f.stack[-1]
    items = kinds.items if isinstance(kinds, trackers.Tuple) else [kinds]
    if not all(isinstance(k, trackers.Known) and isinstance(k.value, type) and issubclass(k.value, BaseException)
               for k in items) or not isinstance(exc, trackers.Known):
        raise GraphBreak("an except clause whose exception types are not known classes")
    f.push(trackers.Known(isinstance(exc.value, tuple(k.value for k in items))))


@handles("RERAISE")
def reraise(f, i):
    """The end of a handler that did not handle the exception (no match, a `finally`, a cleanup): raise it
    again; lasti (below it for a nonzero arg) only sets the traceback line, which the eager rerun shows."""
    exc = f.pop()
    if not (isinstance(exc, trackers.Known) and isinstance(exc.value, BaseException)):
        raise GraphBreak("re-raising an exception the trace does not know")
    raise UserError(exc.value)


@handles("LOAD_ASSERTION_ERROR")
def load_assertion_error(f, i):
    f.push(trackers.Known(AssertionError))


# ---------------------------------------------------------------- imports
@handles("IMPORT_NAME")
def import_name(f, i):
    """`import m` inside traced code: fine when `m` is already loaded (no import side effects)."""
    import importlib
    import sys
    fromlist, level = f.pop(), f.pop()
    level = level.value
    name = i.arg
    if level:
        package = f.globals.get("__package__") or f.globals.get("__name__", "").rpartition(".")[0]
        name = importlib.util.resolve_name("." * level + i.arg, package)
    if name not in sys.modules:
        raise GraphBreak(f"import of {name}, not loaded yet", hint="import it at module level")
    f.push(reads.imported_module(f, name if fromlist.value else name.partition(".")[0]))


@handles("IMPORT_FROM")
def import_from(f, i):
    import sys
    module_vt = f.stack[-1]
    module = module_vt.value
    if hasattr(module, i.arg):
        f.push(protocol.attribute(f, module_vt, i.arg))       # guarded like any attribute read
    elif f"{module.__name__}.{i.arg}" in sys.modules:
        f.push(reads.imported_module(f, f"{module.__name__}.{i.arg}"))
    else:
        raise GraphBreak(f"from {module.__name__} import {i.arg}: not loaded yet")
