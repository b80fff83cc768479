"""DistributedDataParallel and FSDP2 (`fully_shard`) with optimize, in 2 gloo processes on 127.0.0.1.

`optimize(DDP(model))` optimizes the wrapped module's forward while DDP's own forward runs as plain Python;
`DDP(optimize(model))` wraps the optimized module.  Both must train exactly like eager DDP: after backward
and an optimizer step, every rank holds the same parameters, equal to eager DDP's.  `optimize(model)` of a
`fully_shard`ed model must train exactly like the eager sharded model on each rank (outputs and full
parameters after each optimizer step).  The tests run this file as a script (torch.multiprocessing spawns
the ranks), with a bounded timeout; they are marked slow.
"""
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

import partialdyn

WORLD = 2


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def train(model, rank, steps=(3, 4, 5)):
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, rows in enumerate(steps):
        x = torch.randn(rows, 8, generator=torch.Generator().manual_seed(100 * rank + step))  # differs per rank
        sgd.zero_grad()
        model(x).square().sum().backward()
        sgd.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def rank_main(rank, port, scenario):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        SCENARIOS[scenario](rank)
    finally:
        dist.destroy_process_group()


def ddp_variants(rank):
    eager = train(DDP(make_model()), rank)
    for variant in ("optimize(DDP(model))", "DDP(optimize(model))"):
        if variant == "optimize(DDP(model))":
            model = partialdyn.optimize(DDP(make_model()), backend="aot_eager")
            stats_of = model
        else:
            stats_of = partialdyn.optimize(make_model(), backend="aot_eager")
            model = DDP(stats_of)
        params = train(model, rank)
        torch.testing.assert_close(params, eager, msg=lambda m: f"{variant} vs eager DDP: {m}")
        gathered = [torch.empty_like(params) for _ in range(WORLD)]
        dist.all_gather(gathered, params)
        assert all(torch.equal(g, gathered[0]) for g in gathered), f"{variant}: ranks out of sync"
        s = partialdyn.stats(stats_of)
        assert s["graphs"] >= 1 and s["eager_fallbacks"] == 0 and s["internal_errors"] == 0, (variant, s)


def sharded_model(per_layer: bool):
    model = make_model()
    if per_layer:
        fully_shard(model[0])
        fully_shard(model[2])
    return fully_shard(model)


def train_sharded(model, parameters, rank, steps=(3, 4, 5, 4)):
    """Outputs of every step, and the full (all-gathered) parameters after the last optimizer step."""
    sgd = torch.optim.SGD(parameters, lr=0.1)
    outputs = []
    for step, rows in enumerate(steps):
        x = torch.randn(rows, 8, generator=torch.Generator().manual_seed(100 * rank + step))  # differs per rank
        sgd.zero_grad()
        out = model(x)
        outputs.append(out.detach())
        out.square().sum().backward()
        sgd.step()
    return outputs, torch.cat([p.full_tensor().flatten() for p in parameters])


def fsdp2_variants(rank):
    for per_layer in (False, True):
        eager = sharded_model(per_layer)
        eager_outputs, eager_params = train_sharded(eager, list(eager.parameters()), rank)
        partialdyn.reset()
        model = sharded_model(per_layer)
        optimized = partialdyn.optimize(model, backend="aot_eager")
        outputs, params = train_sharded(optimized, list(model.parameters()), rank)
        where = "per-layer fully_shard" if per_layer else "fully_shard at the root"
        for step, (expected, got) in enumerate(zip(eager_outputs, outputs)):
            torch.testing.assert_close(got, expected, msg=lambda m: f"{where}, step {step} output: {m}")
        torch.testing.assert_close(params, eager_params, msg=lambda m: f"{where}, parameters: {m}")
        s = partialdyn.stats(optimized)
        assert s["compiles"] >= 1 and s["eager_fallbacks"] == 0 and s["internal_errors"] == 0, (where, s)
        if per_layer:       # each sharded layer has FSDP's hooks: a call of it is a graph break (it runs in Python)
            assert s["graph_breaks"] >= 2 and s["graphs"] >= 1, (where, s)
        else:               # one graph per call, every call after the first hits the cache
            assert s["graph_breaks"] == 0 and s["compiles"] == 1 and s["cache_hits"] == 3, (where, s)


SCENARIOS = {"ddp": ddp_variants, "fsdp2": fsdp2_variants}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    child = subprocess.run([sys.executable, os.path.abspath(__file__), str(free_port()), scenario],
                           capture_output=True, text=True, timeout=300, env=env)
    assert child.returncode == 0 and child.stdout.strip().endswith("ranks agree"), child.stderr[-3000:]


@pytest.mark.slow     # three interpreters importing torch: tens of seconds on a loaded machine
def test_ddp_around_or_inside_optimize_trains_like_eager_ddp_on_two_ranks():
    run_ranks("ddp")


@pytest.mark.slow
def test_optimize_of_a_fully_sharded_model_trains_like_the_eager_sharded_model_on_two_ranks():
    run_ranks("fsdp2")


if __name__ == "__main__":
    mp.spawn(rank_main, args=(int(sys.argv[1]), sys.argv[2]), nprocs=WORLD, join=True)
    print("ranks agree")
