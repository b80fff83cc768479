"""The shared acceptance corpus, case by case, through the project's own test command.

../shared/conformance must be beside the checkout (CI and developers have it): without it this
module fails to collect, so the 62 cases cannot vanish with the run green.  Beyond what the corpus checks,
each case's last call that ran compiled, made again, must hit the cache.
"""
import sys
from pathlib import Path

import pytest

from helpers import clone, outcome

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance"
if not (CORPUS / "run.py").exists():
    raise FileNotFoundError(f"the acceptance corpus is missing: no {CORPUS / 'run.py'} (../shared must be "
                            f"beside the checkout)")

sys.path.insert(0, str(CORPUS))
import run  # noqa: E402
from cases import CASES  # noqa: E402


class Recording(run.PartialDyn):
    """The corpus's partialdyn, keeping the optimized function and, for each call that returned, a copy of its
    arguments made before it and what it did (helpers.outcome)."""

    def optimize(self, fn, options):
        self.opt = super().optimize(fn, options)
        self.returned = []

        def call(*args, **kwargs):
            again = clone((args, kwargs))
            out, what = outcome(self.opt, *args, **kwargs)
            self.returned.append((again, what))
            return out
        return call

    def stats(self, opt):
        return super().stats(self.opt)


@pytest.fixture(scope="module")
def impl():
    return Recording("eager")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(impl, case):
    problems, stats = run.run_case(impl, case, time_limit=120)
    assert problems == [], f"{case.name}: {problems} (stats {stats})"
    compiled = [again for again, what in impl.returned if what != "eager"]
    assert compiled, f"{case.name}: no call returned from compiled code: {impl.returned}"
    args, kwargs = compiled[-1]
    _, what = outcome(impl.opt, *args, **kwargs)
    assert what == "hit", f"{case.name}: its last compiled call, made again, did not hit ({what}): {stats}"
