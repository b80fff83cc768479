"""`partialdyn.set_stance`: what an optimized function does when its cache has no entry for a call.

`default` compiles (and recompiles) as the policy says; `eager_on_recompile` runs a call that would need a
recompile as plain Python (calls the cache already covers still run compiled; first compiles still happen);
`fail_on_recompile` raises PartialdynError naming the guard that failed.  Like torch.compiler.set_stance.
"""
from __future__ import annotations

STANCES = ("default", "eager_on_recompile", "fail_on_recompile")
_current = ["default"]


def current_stance() -> str:
    return _current[0]


class set_stance:
    """Set the stance for every optimized function: `partialdyn.set_stance("fail_on_recompile")`.  Also a
    context manager, which restores the previous stance on exit:

        with partialdyn.set_stance("eager_on_recompile"):
            model(x)          # an input the cache does not cover runs eagerly, nothing is compiled
    """

    def __init__(self, stance: str = "default"):
        if stance not in STANCES:
            raise ValueError(f"unknown stance {stance!r}; valid stances: {', '.join(STANCES)}")
        self.previous = _current[0]
        _current[0] = stance

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _current[0] = self.previous
        return False
