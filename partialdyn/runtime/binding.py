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


def make_binder(fn: types.FunctionType):
    code = fn.__code__
    names = [param_name(n) for n in code.co_varnames]
    pos = list(names[:code.co_argcount])
    kwonly = list(names[code.co_argcount:code.co_argcount + code.co_kwonlyargcount])
    i = code.co_argcount + code.co_kwonlyargcount
    varargs = names[i] if code.co_flags & inspect.CO_VARARGS else None
    varkw = names[i + bool(varargs)] if code.co_flags & inspect.CO_VARKEYWORDS else None
    defaults = fn.__defaults__ or ()
    first_default = len(pos) - len(defaults)
    kwdefaults = fn.__kwdefaults__ or {}
    params, env = [], {}
    for j, name in enumerate(pos):
        if j >= first_default:
            env[f"__d{j}"] = defaults[j - first_default]
            params.append(f"{name}=__d{j}")
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
            env[f"__k_{name}"] = kwdefaults[name]
            params.append(f"{name}=__k_{name}")
        else:
            params.append(name)
    if varkw:
        params.append(f"**{varkw}")
    order = [param_name(n) for n in frame_argnames(code)]
    src = f"def bind({', '.join(params)}):\n    return ({''.join(n + ', ' for n in order)})\n"
    exec(compile(src, "<partialdyn binder>", "exec"), env)
    binder = env["bind"]
    binder.__code__ = binder.__code__.replace(co_name=code.co_name, co_qualname=code.co_qualname)
    return binder
