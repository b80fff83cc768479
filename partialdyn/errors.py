"""Why tracing stops (raised by the frontend, the graph builder and the shape policy).

GraphBreak: a planned stop (the step runs in Python, a resume function continues).
Unsupported: the tracer cannot model this; the frame (or its rest) runs eagerly.
UserError: the traced program itself raises here (e.g. a shape mismatch found by a
fake kernel): inside a `try` block it is a graph break, elsewhere this call runs
eagerly so the user sees the real exception.
PartialdynError: public; raised to the user instead of falling back.
"""


class GraphBreak(Exception):
    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class Unsupported(Exception):
    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class UserError(Exception):
    """The traced program raises `error`.  `traceable`: the tracer knows the program raises it on every call its
    guards accept, so a handler of the program may be traced (frontend/tracer.py `Frame._catch`); not for errors
    found by fake kernels, nor for one that went through a cleanup the tracer did not run."""

    def __init__(self, error: BaseException, traceable: bool = True):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.traceable = traceable


def run_python(fn, *args, **kwargs):
    """Run `fn` on behalf of the traced program at trace time: what it raises is the program's (UserError)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        raise UserError(e) from e


class PartialdynError(RuntimeError):
    """What partialdyn raises when the user asked it to fail rather than fall back: fullgraph=True and the code
    cannot be traced into one graph, a strict mark_dynamic dim was specialized, set_stance("fail_on_recompile")
    and a recompile was needed, or an internal error under config.suppress_errors = False."""
