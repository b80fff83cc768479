#!/usr/bin/env python3
"""First-call time (the compile users wait for) of small models, partialdyn against torch.compile (issue 13).

    OMP_NUM_THREADS=1 python benchmarks/first_call.py                          # everything, 3 repeats
    OMP_NUM_THREADS=1 python benchmarks/first_call.py --models gpt2 --repeats 1 --no-inductor

Every number is one first call in a fresh interpreter (one subprocess per model, engine and repeat):
the child builds the model, warms the engine up on an unrelated two-line function (imports, lazy
initialisation, the backend's toolchain start-up: once-per-process costs that no model's first call
should carry), then times the model's first call.  Inductor runs without FX graph / AOT autograd
caches and with an empty kernel cache directory, so each compile is a real one.  The figures are
medians over repeats; ratios are partialdyn partial over each of the others.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make `benchmarks` and `partialdyn` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKENS = (2, 16)      # batch, sequence length of the timed call


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


def _token_input(layers):
    return (torch.randint(0, 1000, TOKENS, generator=torch.Generator().manual_seed(0)),)


def gpt2(layers=2):
    tf = _transformers()
    config = tf.GPT2Config(n_layer=layers, n_embd=64, n_head=4, vocab_size=1000, bos_token_id=0, eos_token_id=0,
                           use_cache=False)
    return tf.GPT2Model(config), _token_input(layers)


def bert(layers=2):
    tf = _transformers()
    config = tf.BertConfig(num_hidden_layers=layers, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                           vocab_size=1000, max_position_embeddings=128)
    return tf.BertModel(config, add_pooling_layer=False), _token_input(layers)


def llama(layers=2):
    tf = _transformers()
    config = tf.LlamaConfig(num_hidden_layers=layers, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                            num_key_value_heads=2, vocab_size=1000, max_position_embeddings=128, use_cache=False)
    return tf.LlamaModel(config), _token_input(layers)


def encoder(layers=6):
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
    return model, (torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(0)),)


MODELS = {"gpt2": (gpt2, 2), "bert": (bert, 2), "llama": (llama, 2), "encoder": (encoder, 6)}
ENGINES = ("partialdyn-partial", "partialdyn-static", "torch-default", "torch-dynamic")
INDUCTOR_ENGINES = ("partialdyn-partial", "torch-default", "torch-dynamic")


def optimize(engine: str, fn, backend: str):
    if engine.startswith("partialdyn-"):
        import partialdyn
        return partialdyn.optimize(fn, backend=backend, policy=engine.removeprefix("partialdyn-"))
    dynamic = {"torch-default": None, "torch-dynamic": True}[engine]
    return torch.compile(fn, backend=backend, dynamic=dynamic)


def _warm_up(engine: str, backend: str) -> None:
    def warm(x, y):
        return (x * y).sum(0) + 1
    opt = optimize(engine, warm, backend)
    for n in (3, 5):
        opt(torch.randn(n, 4), torch.randn(n, 4))


def first_call_seconds(model: str, engine: str, backend: str = "eager", layers: int | None = None) -> dict:
    """Build `model`, warm `engine` up elsewhere, and time the model's first call (and its eager call)."""
    build, default_layers = MODELS[model]
    torch.manual_seed(0)
    module, args = build(layers or default_layers)
    module.eval()
    with torch.no_grad():
        eager_start = time.perf_counter()
        module(*args)
        eager_s = time.perf_counter() - eager_start
        _warm_up(engine, backend)
        opt = optimize(engine, module, backend)
        start, cpu_start = time.perf_counter(), time.process_time()
        opt(*args)
        first_s, first_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return {"model": model, "engine": engine, "backend": backend, "first_call_s": first_s,
            "first_call_cpu_s": first_cpu_s, "eager_s": eager_s}


@contextlib.contextmanager
def _no_compile_caches(backend: str):
    if backend != "inductor":
        yield
        return
    import torch._functorch.config
    import torch._inductor.config
    from torch._inductor.utils import fresh_cache
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False), fresh_cache():
        yield


def _child(argv) -> None:
    model, engine, backend, layers = argv
    torch.set_num_threads(1)
    with _no_compile_caches(backend):
        result = first_call_seconds(model, engine, backend, int(layers) or None)
    print("RESULT " + json.dumps(result))


def run_fresh(model: str, engine: str, backend: str, layers: int = 0) -> dict:
    """One first call in a new interpreter."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
        done = subprocess.run([sys.executable, __file__, "--child", model, engine, backend, str(layers)],
                              env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{model}/{engine}/{backend} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def measure(models, engines, backend: str, repeats: int, layers: int = 0, clock: str = "wall") -> dict:
    """(model, engine) -> median first-call seconds (`clock`: wall or the process's CPU time) over `repeats`
    fresh interpreters, engines interleaved."""
    key = {"wall": "first_call_s", "cpu": "first_call_cpu_s"}[clock]
    samples = {(m, e): [] for m in models for e in engines}
    for _ in range(repeats):
        for m in models:
            for e in engines:
                result = run_fresh(m, e, backend, layers)
                samples[(m, e)].append(result[key])
                print(f"  {m:8} {e:20} {backend:9} {result['first_call_s']:.3f} s wall "
                      f"{result['first_call_cpu_s']:.3f} s cpu", file=sys.stderr)
    return {key: statistics.median(values) for key, values in samples.items()}


RATIOS = (("partial/static", "partialdyn-static"), ("partial/tc-dynamic", "torch-dynamic"),
          ("partial/tc-default", "torch-default"))


def to_markdown(times: dict, models, engines, backend: str) -> str:
    ratios = [(name, other) for name, other in RATIOS if other in engines]
    head = ["model", *[f"{e} s" for e in engines], *[name for name, _ in ratios]]
    lines = [f"backend: {backend}", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        cells = [m, *[f"{times[(m, e)]:.3f}" for e in engines]]
        partial = times.get((m, "partialdyn-partial"))
        cells += [f"{partial / times[(m, other)]:.2f}x" if partial is not None else "-" for _, other in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ", ".join(ENGINES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=0, help="layers per model (0: the model's default)")
    parser.add_argument("--no-inductor", action="store_true", help="skip the inductor rows (GPT-2)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the child's CPU time, less moved by other load on the machine "
                             "(inductor's compiler subprocesses are not counted)")
    opts = parser.parse_args(argv)
    models, engines = opts.models.split(","), opts.engines.split(",")
    bad = [m for m in models if m not in MODELS] + [e for e in engines if e not in ENGINES]
    if bad:
        parser.error(f"unknown names: {', '.join(bad)}")
    results = {"eager": measure(models, engines, "eager", opts.repeats, opts.layers, opts.clock)}
    print(f"clock: {opts.clock}")
    print(to_markdown(results["eager"], models, engines, "eager"))
    if not opts.no_inductor and "gpt2" in models:
        inductor_engines = [e for e in INDUCTOR_ENGINES if e in engines]
        results["inductor"] = measure(["gpt2"], inductor_engines, "inductor", opts.repeats, opts.layers, opts.clock)
        print(to_markdown(results["inductor"], ["gpt2"], inductor_engines, "inductor"))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    else:
        main()
