"""Where a guard came from: the operation that made the trace assume it, and the line.

The line is the user's: the innermost traced frame that is not library code (torch,
site-packages, the standard library).  When the guard was made inside library code
(`nn.Conv2d.forward` calling `F.conv2d`), `library` is that library line as well, so a
message can say both which library line assumed it and which user line called it.
"""
from __future__ import annotations

import functools
import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass

import torch

_LIBRARY_DIRS = tuple(sorted({os.path.realpath(p) + os.sep for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    os.path.dirname(os.path.dirname(torch.__file__)))}))


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: str | None) -> bool:
    """Library code: the standard library and installed packages (torch among them).  Cached per file name:
    asked for every frame of every guard a trace makes (realpath is a few stat calls)."""
    if not filename or filename.startswith("<"):
        return bool(filename) and filename.startswith("<frozen")
    return os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def short_path(filename: str | None) -> str:
    """A library file relative to its installation directory (`torch/nn/modules/conv.py`), other files as
    they are."""
    if not filename:
        return "?"
    real = os.path.realpath(filename)
    for base in _LIBRARY_DIRS:
        if real.startswith(base):
            return real[len(base):]
    return filename


@dataclass(frozen=True)
class Provenance:
    op: str                        # "range()", "if", "torch.nn.functional.conv2d", "argument", "attribute read"
    file: str | None               # the user's line
    line: int | None
    text: str = ""                 # its source
    library: tuple | None = None   # (file, line, source) of the library line, when the guard was made there

    def describe(self) -> str:
        """`range() at f.py:7`, or `torch.nn.functional.conv2d at torch/nn/modules/conv.py:549, called from
        model.py:20`."""
        user = f"{short_path(self.file)}:{self.line}" if self.file else "?"
        if self.library:
            file, line, _ = self.library
            return f"{self.op} at {short_path(file)}:{line}, called from {user}"
        return f"{self.op} at {user}"

    def as_dict(self) -> dict:
        out = {"op": self.op, "file": self.file, "line": self.line, "text": self.text}
        if self.library:
            out["library"] = {"file": self.library[0], "line": self.library[1], "text": self.library[2]}
        return out


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep


@functools.lru_cache(maxsize=4096)
def is_engine_file(filename: str) -> bool:
    """partialdyn's own modules (its demo's model is user code)."""
    real = os.path.realpath(filename)
    return real.startswith(_PACKAGE_DIR) and real != os.path.join(_PACKAGE_DIR, "demo.py")


def user_frame(frame):
    """The innermost frame from `frame` outwards that is the user's: not partialdyn's runtime, not library
    code (torch's module call machinery included); None when there is none."""
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith("<") and not is_library_file(file) and not is_engine_file(file):
            return frame
        frame = frame.f_back
    return None


def user_caller() -> tuple | None:
    """(file, line, source) of the innermost frame on the real Python stack that is the user's.  Where an
    optimized library module (an `nn.Sequential`) was called from, for guards made entirely inside library
    code."""
    frame = user_frame(sys._getframe(1))
    if frame is None:
        return None
    file = frame.f_code.co_filename
    return file, frame.f_lineno, linecache.getline(file, frame.f_lineno).strip()


def provenance_of(op: str, frames, caller=None) -> Provenance:
    """The provenance of a guard made now by `op`, `frames` being (file, line, source) of each traced frame
    from the outermost to the innermost, `caller` the user's line that called the traced code (used when
    every traced frame is library code)."""
    frames = [f for f in frames if f and f[0]]
    if not frames:
        return Provenance(op, None, None)
    user = next((f for f in reversed(frames) if not is_library_file(f[0])), caller or frames[0])
    innermost = frames[-1]
    library = innermost if innermost is not user and is_library_file(innermost[0]) else None
    return Provenance(op, user[0], user[1], user[2], library)
