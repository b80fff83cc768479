"""Tensor guards checked in C++ (tensor_check.cpp), built on this machine against the torch that runs it.

Why: a tensor guard reads seven properties of each tensor; in Python each is an attribute lookup and a getter
call, and on CPython 3.12 and 3.13 those made a cache hit cost 1.13x 3.11's (issue 11).  Read from the C++
tensor, the check costs the same on every version and a third of the Python terms.

When it is built: not by pip (its isolated build environment would install a torch of its own to compile
against), but the first time a guard is made with no library for this Python and this torch in the cache
folder: a detached background process compiles it there (about 30 seconds of one core), and the guards made
once it exists use it.  Until then, or where it cannot be built, guards check tensors in Python: the same
answers, slower.  `python -m partialdyn build-native` builds it in the foreground and prints any compiler
error; `config.native_guards = False` (PARTIALDYN_NATIVE_GUARDS=0) turns it off; `config.native_dir`
(PARTIALDYN_NATIVE_DIR) moves the cache folder from ~/.cache/partialdyn.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import torch

from ..config import config

SOURCE = Path(__file__).with_name("tensor_check.cpp")
MODULE_NAME = "partialdyn_tensor_check"
STALE_LOCK_SECONDS = 600        # a build that left its lock this long ago died
# the kinds of tensor_check.cpp: what a guard pins beyond type, dtype, device, requires_grad, inference-ness
RANK, CONTIGUOUS, EXACT = 0, 1, 2
# tensor types whose properties are TensorBase's own (no Python override for the C++ reads to skip)
PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)

_log = logging.getLogger(__name__)
_loaded = None          # the extension module, once loaded
_unusable = False       # it failed to load or to pass its self-test: Python terms for this process


def library_path() -> Path:
    """Where this Python and this torch installation keep the built library."""
    folder = Path(config.native_dir) if config.native_dir else \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "partialdyn"
    return folder / f"tensor_check-{_key()}{importlib.machinery.EXTENSION_SUFFIXES[0]}"


@functools.cache
def _key() -> str:
    """The source, the interpreter and torch's own libraries (the library links to those files)."""
    return hashlib.sha256(b"\0".join([SOURCE.read_bytes(), sys.version.encode(), torch.__version__.encode(),
                                      _torch_lib_dir().encode()])).hexdigest()[:16]


def _beside(path: Path, suffix: str) -> Path:
    """The build's files next to the library: `.lock` while a background build runs, `.failed` (the compiler's
    output) once one failed."""
    return path.with_name(path.name + suffix)


def _torch_lib_dir() -> str:
    return str(Path(torch.__file__).parent / "lib")


def compile_command(output: Path) -> list[str]:
    """One compiler call: the source, torch's headers and libraries, this interpreter's headers."""
    include = Path(torch.__file__).parent / "include"
    return [os.environ.get("CXX") or shutil.which("c++") or "g++", "-O2", "-std=c++20", "-fPIC", "-shared",
            f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
            f"-I{include}", f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}",
            f"-I{sysconfig.get_path('include')}", str(SOURCE), f"-L{_torch_lib_dir()}",
            "-ltorch_python", "-ltorch", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{_torch_lib_dir()}", "-o", str(output)]


def build(path: Path | None = None) -> Path:
    """Compile in the foreground (raises CalledProcessError with the compiler's output); the library appears
    at `path` whole or not at all."""
    path = library_path() if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.foreground.tmp")
    subprocess.run(compile_command(partial), check=True, capture_output=True, text=True)
    os.replace(partial, path)
    _beside(path, ".failed").unlink(missing_ok=True)
    return path


def _start_background_build(path: Path) -> None:
    """A detached shell compiles to a temporary name and renames it in place; its lock keeps other processes
    from starting the same build, and a failed build leaves its compiler output beside the library so that
    no later process tries again (`python -m partialdyn build-native` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _beside(path, ".lock")
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if time.time() - lock.stat().st_mtime < STALE_LOCK_SECONDS:
            return
        lock.unlink(missing_ok=True)      # its build died: the next guard made starts one
        return
    os.close(descriptor)
    partial = path.with_name(f"{path.name}.{os.getpid()}.background.tmp")
    failed = _beside(path, ".failed")
    q = shlex.quote
    script = (f"( {shlex.join(compile_command(partial))} > {q(str(failed))} 2>&1 && mv -f {q(str(partial))} "
              f"{q(str(path))} && rm -f {q(str(failed))}; rm -f {q(str(partial))} {q(str(lock))} ) "
              f"</dev/null >/dev/null 2>&1 &")
    subprocess.run(["sh", "-c", script], check=False)      # returns at once: the build runs on, detached
    _log.info("partialdyn: building its C++ tensor check in the background (once): %s", path)


def _load(path: Path):
    loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(MODULE_NAME, path,
                                                                                    loader=loader))
    loader.exec_module(module)
    _self_test(module)
    return module


def _self_test(module) -> None:
    """A library built from another source or against another torch would answer wrongly: a few known answers
    before any guard trusts it."""
    x = torch.zeros(2, 3)
    cases = [(x, CONTIGUOUS, torch.ones(5, 3), True), (x, CONTIGUOUS, x.t(), False),
             (x, CONTIGUOUS, x[1:], False), (x, CONTIGUOUS, x.double(), False),
             (x, CONTIGUOUS, torch.zeros(2, 3, requires_grad=True), False),
             (x, EXACT, torch.ones(2, 3), True), (x, EXACT, torch.ones(2, 4), False),
             (x, RANK, x[:, 1:], True), (x, RANK, torch.zeros(3), False), (x, RANK, 2.0, False)]
    for example, kind, value, expected in cases:
        if module.tensor_ok(value, module.make_spec(example, kind)) is not expected:
            raise RuntimeError(f"self-test failed: kind {kind}, {value!r}")


def checker():
    """The loaded extension, or None while it is not built (a background build is started) or cannot be used."""
    global _unusable
    if not config.native_guards:
        return None
    if _loaded is not None or _unusable:
        return _loaded
    try:
        return _find_or_build()
    except OSError as error:        # no cache folder to write (a read-only home): Python terms for this process
        _unusable = True
        _log.info("partialdyn: no C++ tensor check (%s); guards check tensors in Python", error)
        return None


def _find_or_build():
    global _loaded, _unusable
    path = library_path()
    if path.exists():
        try:
            _loaded = _load(path)
        except Exception as error:          # a library that does not load or answers wrongly: never used
            _unusable = True
            _log.warning("partialdyn: its C++ tensor check at %s is unusable (%s); guards check tensors in "
                         "Python", path, error)
        return _loaded
    failed = _beside(path, ".failed")
    if failed.exists() and not _beside(path, ".lock").exists():
        _unusable = True
        _log.info("partialdyn: its C++ tensor check could not be built (the compiler's output: %s); guards "
                  "check tensors in Python. `python -m partialdyn build-native` tries again", failed)
    elif not failed.exists():
        _start_background_build(path)
    return None


def ensure_built() -> Path:
    """Build (in the foreground) unless the library exists, and load it: `python -m partialdyn build-native`."""
    global _loaded, _unusable
    path = library_path()
    if not path.exists():
        build(path)
    _loaded, _unusable = _load(path), False
    return path

