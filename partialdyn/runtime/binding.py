"""Argument binding with the function's own signature.

A generated function with the same parameters returns the frame's arguments as
a tuple in `co_varnames` order, so a call with the wrong arguments raises the
same TypeError as the eager call, and guards and runners take plain positional
arguments.
"""
from __future__ import annotations

import inspect
import types


def frame_argnames(code: types.CodeType) -> list[str]:
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return list(code.co_varnames[:n])


def param_name(name: str) -> str:
    """Comprehension code objects take `.0`; give such names a spelling Python accepts."""
    return name if name.isidentifier() else "__arg_" + "".join(c if c.isalnum() else "_" for c in name)


class DefaultsChanged(Exception):
    """The function's defaults were reassigned so that a default the binder needs is gone: bind anew."""


def _positional_default(fn: types.FunctionType, index: int, count: int):
    """Parameter `index` of `count` positional ones was not passed: its default, read now (not when the binder
    was made), so reassigned defaults are honoured without checking them on every call."""
    defaults = fn.__defaults__ or ()
    offset = index - (count - len(defaults))
    if offset < 0:
        raise DefaultsChanged
    return defaults[offset]


def _keyword_default(fn: types.FunctionType, name: str):
    try:
        return fn.__kwdefaults__[name]
    except (KeyError, TypeError):
        raise DefaultsChanged from None


def _fresh(base: str, taken: set) -> str:
    while base in taken:
        base += "_"
    return base


def make_binder(fn: types.FunctionType):
    """The binder of `fn` as its defaults are now.  A parameter that has a default takes a sentinel; the body
    reads the default from `fn` only when the sentinel is left, so a call passing every argument reads
    nothing of `fn` (on CPython 3.12+ each `__defaults__` read is an audit event, costly once any audit hook
    is installed, e.g. by filelock).  Reassigned defaults are honoured: a default that no longer exists
    raises DefaultsChanged, a parameter that gained one raises TypeError; the caller then binds again with
    a binder made from the new defaults, which raises Python's own TypeError if the call is still wrong."""
    code = fn.__code__
    names = [param_name(n) for n in code.co_varnames]
    taken = set(names)
    missing, function = _fresh("__pd_missing", taken), _fresh("__pd_fn", taken)
    positional, keyword = _fresh("__pd_positional_default", taken), _fresh("__pd_keyword_default", taken)
    pos = list(names[:code.co_argcount])
    kwonly = list(names[code.co_argcount:code.co_argcount + code.co_kwonlyargcount])
    i = code.co_argcount + code.co_kwonlyargcount
    varargs = names[i] if code.co_flags & inspect.CO_VARARGS else None
    varkw = names[i + bool(varargs)] if code.co_flags & inspect.CO_VARKEYWORDS else None
    first_default = len(pos) - len(fn.__defaults__ or ())
    kwdefaults = fn.__kwdefaults__ or {}
    params, fill = [], []
    for j, name in enumerate(pos):
        if j >= first_default:
            params.append(f"{name}={missing}")
            fill.append(f"    if {name} is {missing}: {name} = {positional}({function}, {j}, {len(pos)})\n")
        else:
            params.append(name)
        if j + 1 == code.co_posonlyargcount:
            params.append("/")
    if varargs:
        params.append(f"*{varargs}")
    elif kwonly:
        params.append("*")
    for name in kwonly:
        if name in kwdefaults:
            params.append(f"{name}={missing}")
            fill.append(f"    if {name} is {missing}: {name} = {keyword}({function}, {name!r})\n")
        else:
            params.append(name)
    if varkw:
        params.append(f"**{varkw}")
    order = [param_name(n) for n in frame_argnames(code)]
    src = f"def bind({', '.join(params)}):\n{''.join(fill)}    return ({''.join(n + ', ' for n in order)})\n"
    env = {missing: object(), function: fn, positional: _positional_default, keyword: _keyword_default}
    exec(compile(src, "<partialdyn binder>", "exec"), env)
    binder = env["bind"]
    binder.__code__ = binder.__code__.replace(co_name=code.co_name, co_qualname=code.co_qualname)
    binder.__name__, binder.__qualname__ = fn.__name__, fn.__qualname__     # what Python's TypeError names
    return binder
