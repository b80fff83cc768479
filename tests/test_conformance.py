"""The shared acceptance corpus, case by case, through the project's own test command.

../shared/conformance must be beside the checkout (CI and developers have it): without it this
module fails to collect, so the 62 cases cannot vanish with the run green.
"""
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance"
if not (CORPUS / "run.py").exists():
    raise FileNotFoundError(f"the acceptance corpus is missing: no {CORPUS / 'run.py'} (../shared must be "
                            f"beside the checkout)")

sys.path.insert(0, str(CORPUS))
import run  # noqa: E402
from cases import CASES  # noqa: E402


@pytest.fixture(scope="module")
def impl():
    return run.PartialDyn("eager")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(impl, case):
    problems, stats = run.run_case(impl, case, time_limit=120)
    assert problems == [], f"{case.name}: {problems} (stats {stats})"
