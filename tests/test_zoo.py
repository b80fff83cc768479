"""The model zoo: Hugging Face architectures (benchmarks/zoo_models.py) compiled against eager.

Every model runs its stream of six calls (batch and length vary, one call has batch 1) and must
be correct on every call, run exactly one compiled graph per call, with no graph break, no eager
fallback, and no more compiles than torch.compile's default needs on the same stream
(`benchmarks/zoo.py` measures that: 3 for every model, a static compile, a dynamic one and one
for batch 1). Two of them also train: forward, backward and an optimizer step through aot_eager.
Models are built from tiny configs with random weights; nothing is downloaded.
"""
import re
import sys
from pathlib import Path

import pytest
import torch

import partialdyn
from helpers import CountingBackend, outcome

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # `benchmarks` is not installed

from benchmarks.zoo_models import _ENCODER, BY_NAME, ZOO, tensors_of, token_calls, transformers  # noqa: E402

TORCH_DEFAULT_COMPILES = 3

# Models that do not meet the bar yet: name -> (why, what the test fails with). Each runs as a strict
# xfail, so a fix shows up as an XPASS failure and the entry must then be removed.
KNOWN_FAILING: dict = {}


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def assert_same_output(got, want, where):
    assert type(got) is type(want), f"{where}: {type(got).__name__} vs {type(want).__name__}"
    got_tensors, want_tensors = tensors_of(got), tensors_of(want)
    assert len(got_tensors) == len(want_tensors), f"{where}: {len(got_tensors)} tensors vs {len(want_tensors)}"
    for i, (a, b) in enumerate(zip(got_tensors, want_tensors)):
        torch.testing.assert_close(a, b, msg=lambda m: f"{where}, tensor {i}: {m}")


def zoo_params() -> list:
    params = []
    for model in ZOO:
        marks = []
        if model.name in KNOWN_FAILING:
            reason, raises = KNOWN_FAILING[model.name]
            marks.append(pytest.mark.xfail(strict=True, raises=raises, reason=reason))
        params.append(pytest.param(model, id=model.name, marks=marks))
    return params


def run_stream_with_one_graph_per_call(module, calls, name) -> dict:
    """Each call equals eager's and runs exactly one graph; no break, no fallback, at most torch.compile
    default's compiles.  The stats."""
    backend = CountingBackend()
    optimized = partialdyn.optimize(module, backend=backend)
    with torch.no_grad():
        for i, kwargs in enumerate(calls):
            want = module(**kwargs)
            runs = backend.runs
            got = optimized(**kwargs)
            assert backend.runs - runs == 1, f"call {i} ran {backend.runs - runs} graphs"
            assert_same_output(got, want, f"{name} call {i}")
    stats = partialdyn.stats(optimized)
    assert stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0, stats
    assert 1 <= stats["compiles"] <= TORCH_DEFAULT_COMPILES and stats["graphs"] == stats["compiles"], stats
    return stats


@pytest.mark.parametrize("model", zoo_params())
def test_zoo_model_is_correct_with_one_graph_per_call_and_no_break(model):
    calls = model.calls()
    stats = run_stream_with_one_graph_per_call(model.build(), calls, model.name)
    assert stats["calls"] == len(calls)
    assert len(partialdyn.events("compile")) == stats["compiles"]
    for kind in ("graph_break", "eager_fallback", "cache_limit"):
        assert partialdyn.events(kind) == [], f"{kind}: {partialdyn.events(kind)}"


def train_opt():
    config = transformers().OPTConfig(vocab_size=96, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                      num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64,
                                      dropout=0.0, attention_dropout=0.0)
    return transformers().OPTForCausalLM(config)


def train_distilbert():
    config = transformers().DistilBertConfig(vocab_size=96, dim=32, hidden_dim=64, n_layers=2, n_heads=4,
                                             max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)
    return transformers().DistilBertForMaskedLM(config)


@pytest.mark.parametrize("build", [train_opt, train_distilbert], ids=["opt", "distilbert"])
def test_zoo_training_step_matches_eager_through_aot_eager(build):
    """Forward with a loss, backward and an SGD step, three times with varying shapes: the
    parameters after each step equal eager's, and the forwards compiled whole (no break, no fallback)."""
    torch.manual_seed(0)
    eager_model = build().train()
    compiled_model = build().train()
    compiled_model.load_state_dict(eager_model.state_dict())
    optimized = partialdyn.optimize(compiled_model, backend="aot_eager")
    eager_opt = torch.optim.SGD(eager_model.parameters(), lr=0.1)
    compiled_opt = torch.optim.SGD(compiled_model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for step, (batch, length) in enumerate(((2, 8), (3, 12), (1, 10))):
        ids = torch.randint(3, 96, (batch, length), generator=g)
        for fn, opt in ((eager_model, eager_opt), (optimized, compiled_opt)):
            opt.zero_grad()
            loss = fn(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
        for (name, want), got in zip(eager_model.named_parameters(), compiled_model.parameters()):
            torch.testing.assert_close(got, want, msg=lambda m: f"step {step}, {name}: {m}")
    stats = partialdyn.stats(optimized)
    assert stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0, stats
    assert 1 <= stats["compiles"] <= TORCH_DEFAULT_COMPILES and stats["graphs"] == stats["compiles"], stats


def bert_classifier_with_labels():
    """A classification head that builds its CrossEntropyLoss inside forward when given labels."""
    torch.manual_seed(0)
    model = transformers().BertForSequenceClassification(transformers().BertConfig(num_labels=3, **_ENCODER)).eval()
    g = torch.Generator().manual_seed(2)
    return model, [{**kw, "labels": torch.randint(0, 3, (kw["input_ids"].size(0),), generator=g)}
                   for kw in token_calls()]


def llama_with_hidden_states():
    """output_hidden_states=True: transformers' capture_outputs installs forward hooks on every layer and runs
    the forward inside try/finally."""
    model = BY_NAME["llama"].build()
    return model, [{**kw, "output_hidden_states": True} for kw in token_calls()]


@pytest.mark.parametrize("build", [bert_classifier_with_labels, llama_with_hidden_states],
                         ids=["bert-classifier-labels", "llama-hidden-states"])
def test_zoo_heads_with_labels_and_hooked_layers_compile_with_no_break(build):
    module, calls = build()
    run_stream_with_one_graph_per_call(module, calls, build.__name__)


PROVENANCE_MODELS = ("gpt2", "resnet")       # a decoder, and a vision model whose guards come from nn.Conv2d


@pytest.mark.parametrize("model", [m for m in ZOO if m.name in PROVENANCE_MODELS], ids=lambda m: m.name)
def test_every_guard_of_a_zoo_run_has_a_provenance_and_each_recompile_names_a_line(model):
    module, calls = model.build(), model.calls()
    optimized = partialdyn.optimize(module, backend="eager", policy="static")    # static: a recompile per shape
    with torch.no_grad():
        for kwargs in calls:
            optimized(**kwargs)
        assert outcome(optimized, **calls[0])[1] == "hit"     # the guards accept what they were made for
    guards = [g for e in partialdyn.events("guards") for g in e["guards"]]
    assert guards
    missing = [g["text"] for g in guards
               if not (g["provenance"] and g["provenance"]["op"] and g["provenance"]["file"] and g["provenance"]["line"])]
    assert not missing, missing[:5]
    reasons = [e["reason"] for e in partialdyn.events("compile") if e["recompile"]]
    assert reasons
    for reason in reasons:
        assert re.search(r"\(from .* at \S+\.py:\d+", reason), reason


def test_generate_of_an_optimized_causal_lm_on_a_left_padded_batch_gives_eager_s_tokens_and_logits():
    """generate() reads the optimized forward's parameters to decide what to pass (position_ids from the
    attention mask): GPT-2's absolute positions make a left-padded row wrong if it does not see them."""
    config = transformers().GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                       pad_token_id=0, eos_token_id=95)
    torch.manual_seed(0)
    model = transformers().GPT2LMHeadModel(config).eval()
    ids = torch.randint(3, 90, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[0, :2] = 0                                   # row 0 is left-padded
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, output_logits=True,
                   return_dict_in_generate=True)
    optimized = partialdyn.optimize(model)
    with torch.no_grad():
        want, got = model.generate(**options), optimized.generate(**options)
    assert got.sequences.tolist() == want.sequences.tolist()
    for step, (a, b) in enumerate(zip(got.logits, want.logits)):
        torch.testing.assert_close(a, b, msg=lambda m: f"step {step}: {m}")
    stats = partialdyn.stats(optimized)
    assert stats["cache_hits"] >= 1 and stats["eager_fallbacks"] == 0, stats
