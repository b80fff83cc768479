"""The compile budget of one optimized function: backoff never costs more than a full cache.

`static` compiles once per distinct input signature (the sizes and ints a trace
reads) until `cache_size_limit` entries, then runs eagerly.  Under `partial` the
function's own compiles happen only at a signature not seen before (an entry
covers every input with the signature it was traced on), so they never outnumber
static's.  What a backoff break adds is the resume functions after it and
everything they spawn (*paid* frames).  The function's own compiles and its paid
frames' compiles share one budget:

    own compiles + paid compiles <= cache_size_limit

A paid frame that cannot afford its compile runs eagerly on that call (an
`eager_fallback` event says so), and a trace that could afford its own compile
but not the resume function's specializes the unstable dim instead of breaking,
as `static` would.  Resume functions of other breaks (a `print`, a data-dependent
size) are not paid: `static` makes them too.
"""
from __future__ import annotations


class CompileBudget:
    def __init__(self, cache_size_limit: int):
        self.limit = cache_size_limit
        self.spent = 0                 # compiles of the function itself and of its paid frames

    def affords(self, compiles: int) -> bool:
        return self.spent + compiles <= self.limit

    def spend(self) -> None:
        self.spent += 1
