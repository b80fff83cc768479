"""An op identical to an earlier one of the same trace takes its fake result from it (config.fake_reuse,
graph/reuse.py): the graphs and guards are those of a fresh propagation, and results agree with eager."""
import pytest
import torch
import transformers
from torch import nn

import partialdyn
from helpers import check, compile_events, entries, r

transformers.logging.set_verbosity_error()


@pytest.fixture(autouse=True)
def fake_reuse_restored():
    saved = partialdyn.config.fake_reuse
    partialdyn.reset()
    yield
    partialdyn.config.fake_reuse = saved
    partialdyn.reset()


def repeated_blocks(x, w):
    """Views of op results and of inputs, slices, an op returning its own input, in-place writes to fresh
    tensors, the same block three times, then a write to the input through a view."""
    outs = []
    for _ in range(3):
        h = (x @ w).view(x.shape[0], 2, -1).transpose(1, 2).contiguous()
        h[:, 0] += 1
        same = h.contiguous()
        outs.append((same is h, h[:, 1:].sum(-1), x.view(-1)[: x.shape[1]] * 2))
    x.view(-1)[: x.shape[1]].mul_(2)       # the input is written only through a reused view
    return outs


def encoder():
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).eval()


def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, bos_token_id=0,
                                     eos_token_id=0, use_cache=False)
    return transformers.GPT2Model(config).eval()


WORKLOADS = {
    "repeated_blocks": (lambda: repeated_blocks, [(r(3, 4), r(4, 6)), (r(5, 4), r(4, 6))]),
    "transformer_encoder": (encoder, [(r(2, 5, 16),), (r(3, 7, 16),)]),
    "gpt2": (gpt2, [(torch.randint(0, 100, (2, 6)),), (torch.randint(0, 100, (3, 9)),)]),
}


def compiled_under(mode: str, build, calls):
    """Graph codes, guards (with provenance) and reuse counts of every entry, fake_reuse=mode."""
    partialdyn.reset()
    partialdyn.config.fake_reuse = mode
    fn = build()
    with torch.no_grad():
        check(fn, calls)
    events = compile_events(fn)
    return [e["graph_code"] for e in events], entries(fn), [e["fake_results_reused"] for e in events]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_reused_fake_results_give_the_graphs_and_guards_of_a_fresh_propagation(workload):
    build, calls = WORKLOADS[workload]
    graphs_off, guards_off, reused_off = compiled_under("off", build, calls)
    graphs_on, guards_on, reused_on = compiled_under("on", build, calls)
    graphs_check, guards_check, _ = compiled_under("check", build, calls)   # a mismatch would fall back
    assert graphs_on == graphs_off == graphs_check and all(graphs_on)
    assert guards_on == guards_off == guards_check
    assert reused_off == [0] * len(reused_off) and all(n > 0 for n in reused_on), reused_on


def test_an_op_repeated_under_autocast_gets_the_autocast_dtype():
    def mixed(x, w):
        a = x @ w
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = x @ w
        return a, b, b.dtype        # read while tracing, from b's fake value
    check(mixed, [(r(3, 4), r(4, 5)), (r(6, 4), r(4, 5))])


def test_an_op_repeated_with_grad_mode_on_requires_grad_where_its_no_grad_twin_does_not():
    def twins(x, w):
        with torch.no_grad():
            a = x @ w
        b = x @ w
        return a, b, b.requires_grad        # read while tracing, from b's fake value
    check(twins, [(r(3, 4), r(4, 5, requires_grad=True)), (r(6, 4), r(4, 5, requires_grad=True))])


def test_fake_reuse_rejects_unknown_modes():
    with pytest.raises(ValueError, match="valid values: on, off, check"):
        partialdyn.config.fake_reuse = "sometimes"


def test_an_op_repeated_after_set_grad_enabled_mid_function_sees_the_new_grad_mode():
    def switched(x, w):
        torch.set_grad_enabled(False)
        a = x @ w
        torch.set_grad_enabled(True)
        b = x @ w
        return a, b, a.requires_grad, b.requires_grad        # read while tracing, from the fake values
    check(switched, [(r(3, 4), r(4, 5, requires_grad=True)), (r(6, 4), r(4, 5, requires_grad=True))])


def test_an_op_repeated_after_autocast_exit_gets_the_dtype_of_no_autocast_again():
    def region(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = x @ w
        b = x @ w
        return a, b, a.dtype, b.dtype        # read while tracing, from the fake values
    check(region, [(r(3, 4), r(4, 5)), (r(6, 4), r(4, 5))])
