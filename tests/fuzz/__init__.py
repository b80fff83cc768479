"""A state-mutation fuzzer: generated programs whose outside state changes between calls, run eagerly and
optimized under every policy; `programs` generates them, `state` runs, compares and reduces them.

    python -m tests.fuzz.state --programs 2000 --seed 1     # a long run, from the repository root
"""
