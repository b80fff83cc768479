"""Deliberately broken engines for the meta-test (tests/test_meta_broken_engines.py).

tests/conftest.py installs one at session start when BROKEN_PARTIALDYN_ENGINE names it; the engine's code
knows nothing about this.  Each patches the real engine, in the test process only, so that it stops doing
its job in one way:

- identity: an optimized function calls the original eagerly; only `calls` is counted.
- fallback: every compile gives up (as for an unsupported step), so every frame runs eagerly.
- nocache:  every guard function rejects every input, so the cache never hits.

Every engine test must fail under each of them; the meta-test holds the short list of tests that may pass.
"""
from partialdyn.errors import Unsupported
from partialdyn.guards import codegen
from partialdyn.runtime import compiler
from partialdyn.runtime.function import OptimizedFunction


def _identity_call(self, *args, **kwargs):
    if self.root is self:
        self.stats.calls += 1
    return self.fn(*args, **kwargs)


def _failing_compile(opt, bound, break_allowed=True):
    raise Unsupported("broken engine: every compile gives up")


class _NeverAcceptingGuard(codegen.GuardFunction):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.check = lambda *args: False


BROKEN = {
    "identity": (OptimizedFunction, "__call__", _identity_call),
    "fallback": (compiler, "compile_entry", _failing_compile),
    "nocache": (compiler, "GuardFunction", _NeverAcceptingGuard),
}


def install(name: str) -> None:
    """Break the engine the way `name` says (a key of BROKEN)."""
    if name not in BROKEN:
        raise ValueError(f"BROKEN_PARTIALDYN_ENGINE={name!r}; known: {', '.join(BROKEN)}")
    owner, attribute, replacement = BROKEN[name]
    setattr(owner, attribute, replacement)
