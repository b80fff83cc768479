"""Global configuration, with `PARTIALDYN_*` environment overrides.

One mutable `config` object holds the defaults that `optimize` uses when an
option is not given.  Every option is validated when set, so a bad value fails
where the user wrote it, with the list of valid values.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

POLICIES = ("partial", "dynamic", "static", "automatic")
FAKE_REUSE = ("on", "off", "check")      # check: propagate anyway and compare with the reused result
LOG_TOPICS = ("recompiles", "guards", "graph_breaks", "specializations", "fallbacks", "compiles", "summary")


@dataclass
class Config:
    """The defaults `optimize` uses (`partialdyn.config.policy = "static"`); each option is validated when set
    and can be given by the environment (PARTIALDYN_POLICY, PARTIALDYN_LOGS=recompiles, ...)."""
    recompile_limit: int = 2        # recompiles caused by one dim before it turns unstable
    cache_size_limit: int = 8       # entries per code object; past it the frame runs eagerly
    policy: str = "partial"
    backend: str = "eager"
    fullgraph: bool = False         # raise instead of graph-breaking / falling back
    suppress_errors: bool = True    # an internal error while tracing: warn and run eagerly (False: raise)
    log_file: str | None = None     # JSON Lines event log
    logs: tuple = ()                # topics printed to stderr, like TORCH_LOGS
    fake_reuse: str = "on"          # an op identical to an earlier one in the trace reuses its fake result
    native_guards: bool = True      # tensor guards checked in C++ once guards/native.py has built it
    native_dir: str | None = None   # where that library is built (default ~/.cache/partialdyn)

    def __setattr__(self, name, value):
        if name not in {f.name for f in fields(self)}:
            raise AttributeError(f"partialdyn.config has no option {name!r}; "
                                 f"options: {', '.join(f.name for f in fields(self))}")
        object.__setattr__(self, name, validate(name, value))


def validate(name: str, value):
    """Return `value` checked (and normalised) for option `name`, or raise ValueError."""
    if name in ("recompile_limit", "cache_size_limit"):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "recompile_limit" else 1):
            low = 0 if name == "recompile_limit" else 1
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    elif name == "policy":
        if value not in POLICIES:
            raise ValueError(f"unknown policy {value!r}; valid policies: {', '.join(POLICIES)}")
    elif name == "backend":
        from .backends import check_backend
        check_backend(value)
    elif name in ("fullgraph", "suppress_errors", "native_guards"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    elif name == "fake_reuse":
        if value not in FAKE_REUSE:
            raise ValueError(f"unknown fake_reuse {value!r}; valid values: {', '.join(FAKE_REUSE)}")
    elif name == "logs":
        if isinstance(value, str):
            value = tuple(t.strip() for t in value.split(",") if t.strip())
        value = tuple(value)
        if "all" in value:
            value = LOG_TOPICS
        bad = [t for t in value if t not in LOG_TOPICS]
        if bad:
            raise ValueError(f"unknown log topic(s) {bad}; valid topics: {', '.join(LOG_TOPICS)}, all")
    return value


def _parse_bool(text: str) -> bool:
    return {"1": True, "true": True, "0": False, "false": False}[text.lower()]


_ENV = {
    "PARTIALDYN_RECOMPILE_LIMIT": ("recompile_limit", int),
    "PARTIALDYN_CACHE_SIZE_LIMIT": ("cache_size_limit", int),
    "PARTIALDYN_POLICY": ("policy", str),
    "PARTIALDYN_BACKEND": ("backend", str),
    "PARTIALDYN_FULLGRAPH": ("fullgraph", _parse_bool),
    "PARTIALDYN_SUPPRESS_ERRORS": ("suppress_errors", _parse_bool),
    "PARTIALDYN_LOG": ("log_file", str),
    "PARTIALDYN_LOGS": ("logs", str),
    "PARTIALDYN_FAKE_REUSE": ("fake_reuse", str),
    "PARTIALDYN_NATIVE_GUARDS": ("native_guards", _parse_bool),
    "PARTIALDYN_NATIVE_DIR": ("native_dir", str),
}


def from_environment(environ=os.environ) -> Config:
    """Build a Config from defaults plus `PARTIALDYN_*` variables; bad values raise ValueError."""
    cfg = Config()
    for var, (name, parse) in _ENV.items():
        if var not in environ:
            continue
        raw = environ[var]
        try:
            value = parse(raw)
        except (ValueError, KeyError):
            raise ValueError(f"{var}={raw!r} is not a valid value for {name}") from None
        try:
            setattr(cfg, name, value)
        except ValueError as e:
            raise ValueError(f"{var}={raw!r}: {e}") from None
    unknown = sorted(k for k in environ if k.startswith("PARTIALDYN_") and k not in _ENV)
    if unknown:
        raise ValueError(f"unknown environment variable(s) {unknown}; known: {', '.join(_ENV)}")
    return cfg


config = from_environment()
