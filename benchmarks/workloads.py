"""Benchmark workloads: each builder returns (callable, list of input tuples).

Builders seed everything they create, so calling one twice gives the same weights
and the same inputs; the runner builds a fresh copy for every engine, so no engine
sees a module another engine has wrapped.  Every stream varies some size, because
how an engine handles changing shapes is what the benchmarks compare.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class WorkloadUnavailable(Exception):
    """An optional workload whose dependency is missing; the runner records a skip."""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp():
    """A plain MLP over varying batch sizes: only torch ops consume the batch dim."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 10)).eval()
    g = _gen(1)
    return model, [(torch.randn(b, 32, generator=g),) for b in (8, 16, 3, 32, 64, 17, 128, 5)]


class Attention(nn.Module):
    """Hand-written multi-head self-attention; sizes flow into view/reshape and one
    `math.sqrt` of the head dim (a value use of a size that is static anyway)."""

    def __init__(self, d_model: int = 64, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, t, d = x.size()
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        head_dim = q.size(-1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        y = scores.softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))


def attention():
    """Self-attention over varying sequence lengths, batch 2."""
    torch.manual_seed(0)
    g = _gen(2)
    return Attention().eval(), [(torch.randn(2, t, 64, generator=g),) for t in (8, 12, 16, 24, 32, 48, 64, 20)]


def encoder():
    """nn.TransformerEncoder (2 layers, d_model 64) over varying batch and length."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    g = _gen(3)
    shapes = ((2, 8), (4, 8), (2, 16), (4, 24), (8, 12), (3, 32), (2, 40), (6, 20))
    return model, [(torch.randn(b, t, 64, generator=g),) for b, t in shapes]


def branchy_fn(x, w):
    """Python branches on the batch size: predicate uses, never value uses."""
    n = x.size(0)
    h = x @ w
    if n > 16:
        h = torch.relu(h) + h.mean(0)
    else:
        h = torch.tanh(h)
    if n % 2 == 0:
        h = h * 2
    return h.view(n, -1).sum(1)


def branchy():
    """Sizes chosen to visit all four branch combinations twice."""
    g = _gen(4)
    w = torch.randn(16, 16, generator=g)
    return branchy_fn, [(torch.randn(n, 16, generator=g), w) for n in (4, 8, 20, 32, 5, 40, 64, 11)]


def datadep_fn(x):
    """Boolean masking and nonzero give data-dependent sizes; Python then consumes one."""
    mask = x > 0
    pos = x[mask]
    rows = torch.nonzero(mask.any(1)).squeeze(1)
    if pos.numel() > x.numel() // 2:
        return x[rows].sum(0) + pos.mean()
    return x[rows].sum(0) * 0.5 - pos.sum()


def datadep():
    """Shifted inputs so the data-dependent branch goes both ways."""
    g = _gen(5)
    shapes_shifts = ((8, 0.3), (16, -0.3), (12, 0.5), (32, 0.0), (24, -0.5), (64, 0.2))
    return datadep_fn, [(torch.randn(n, 4, generator=g) + s,) for n, s in shapes_shifts]


def tiny_fn(x, y):
    return x + y


def tiny():
    """`x + y` on a few elements: the call is almost all engine overhead."""
    g = _gen(6)
    return tiny_fn, [(torch.randn(n, generator=g), torch.randn(n, generator=g)) for n in (4, 8, 16, 6, 10, 12)]


def _transformers():
    try:
        import transformers
    except ImportError:
        raise WorkloadUnavailable("transformers is not installed (pip install transformers)") from None
    transformers.logging.set_verbosity_error()
    return transformers


def _token_ids(seed: int):
    g = _gen(seed)
    return [(torch.randint(0, 1000, (2, t), generator=g),) for t in (8, 12, 16, 24, 32, 10)]


def gpt2():
    """Hugging Face GPT-2, 2 layers, random weights from a config (no download)."""
    tf = _transformers()
    torch.manual_seed(0)
    config = tf.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000,
                           bos_token_id=0, eos_token_id=0, use_cache=False)
    return tf.GPT2Model(config).eval(), _token_ids(7)


def bert():
    """Hugging Face BERT, 2 layers, random weights from a config (no download)."""
    tf = _transformers()
    torch.manual_seed(0)
    config = tf.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                           intermediate_size=128, vocab_size=1000, max_position_embeddings=128)
    return tf.BertModel(config, add_pooling_layer=False).eval(), _token_ids(8)


WORKLOADS = {
    "mlp": mlp,
    "attention": attention,
    "encoder": encoder,
    "branchy": branchy,
    "datadep": datadep,
    "tiny": tiny,
    "gpt2": gpt2,
    "bert": bert,
}
