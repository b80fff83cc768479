#!/usr/bin/env python3
"""Architecture sweep: Hugging Face models outside the zoo, through partialdyn, checked against eager.

    export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1           # from the repository root
    python benchmarks/hf_sweep.py                       # every architecture in SWEEP
    python benchmarks/hf_sweep.py --models canine,longformer --details   # every reason and warning
    python benchmarks/hf_sweep.py --padded              # token inputs also get a padded attention_mask
    python benchmarks/hf_sweep.py --list                # the names and their task
    (about 6 minutes for all on CPython 3.11, 10 on 3.13)

Each architecture is built from its own config class with tiny sizes (TINY: hidden 32, 2 layers,
4 heads, vocabulary 96; only the keys that config knows are passed), random seeded weights, eval
mode; nothing is downloaded.  A model that fails to build, or whose stream fails eagerly, is
reported as skipped.  The stream is five calls varying batch and sequence length (image models:
the batch), run eagerly and through `partialdyn.optimize(model, backend="eager")` under no_grad;
every output tensor is compared with torch.testing.assert_close.  --padded adds an attention_mask
with right padding (the last row of each batch of 2+ ends with 3 padded positions) to token inputs.

Output: one markdown row per model (status, compiles, compiles after each call -- growing on
every call is a recompile storm --, graph breaks, eager fallbacks, internal errors, then the
distinct break / fallback reasons), and with --details the full reasons, partialdyn's warnings and
tracebacks.  Results and root causes: docs/performance.md, "Architecture sweep".
Status is `ok` (all outputs match), `MISMATCH` (a wrong result), `CRASH` (the optimized call
raised where eager did not), `TIMEOUT`, `ERROR` (a bug of this script), `skip` (could not build
/ eager fails).  The zoo's 23 models
(benchmarks/zoo_models.py) are left out: they are covered by tests/test_zoo.py.
"""
from __future__ import annotations

import argparse
import inspect
import os
import resource
import signal
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):   # run as a script: make `benchmarks` and `partialdyn` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import partialdyn  # noqa: E402
from benchmarks.zoo_models import tensors_of  # noqa: E402

VOCAB = 96
# (batch, length) of each call; batch 1 once, lengths vary.
STREAM = ((2, 8), (3, 12), (1, 10), (2, 16), (4, 7))
IMAGE_BATCHES = (2, 3, 1, 2, 4)
MAX_PARAMETERS = 5_000_000     # a bigger model means some size key was not made tiny: skipped
MEMORY_LIMIT = 12 * 2**30      # address space; a config with default sizes fails to allocate instead of OOM

# Config keys and the tiny value they get, when the config class knows the key.
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, n_embd=32, d_model=32, dim=32, n_embed=32, embed_dim=32,
    intermediate_size=64, ffn_dim=64, n_inner=64, d_ff=64, hidden_dim=64, encoder_ffn_dim=64,
    decoder_ffn_dim=64, moe_intermediate_size=32, shared_expert_intermediate_size=32,
    num_hidden_layers=2, n_layer=2, n_layers=2, num_layers=2, encoder_layers=2, decoder_layers=2,
    num_decoder_layers=2, num_attention_heads=4, n_head=4, n_heads=4, num_heads=4,
    encoder_attention_heads=4, decoder_attention_heads=4, num_key_value_heads=2, head_dim=8, d_kv=8,
    max_position_embeddings=128, n_positions=128, n_ctx=128, max_seq_len=128,
    num_experts=4, num_local_experts=4, n_routed_experts=4, num_experts_per_tok=2,
    pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    image_size=32, patch_size=8, num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
    embedding_size=32, emb_dim=32, entity_vocab_size=16, entity_emb_size=16,
)


@dataclass(frozen=True)
class Arch:
    model_type: str      # key of transformers' CONFIG_MAPPING
    task: str            # causal | classify | seq2seq | image
    extra: dict = field(default_factory=dict)   # config keys on top of TINY


TASK_MAPPINGS = {"causal": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
                 "classify": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
                 "seq2seq": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
                 "image": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"}

SWEEP = [
    # decoders (causal LM head)
    Arch("gpt_neo", "causal", {"attention_types": [[["global", "local"], 1]]}),
    Arch("gptj", "causal", {"rotary_dim": 4}),
    Arch("codegen", "causal", {"rotary_dim": 4}),
    Arch("deepseek_v3", "causal", {"kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8,
                                   "qk_nope_head_dim": 8, "v_head_dim": 8, "n_group": 1, "topk_group": 1,
                                   "first_k_dense_replace": 1}),
    *(Arch(t, "causal") for t in ( "gpt_bigcode", "biogpt", "ctrl", "openai-gpt", "xglm", "mpt",
        "persimmon", "stablelm", "starcoder2", "phi3", "gemma2", "gemma3_text", "cohere", "cohere2", "olmo",
        "olmo2", "granite", "helium", "glm", "glm4", "qwen3", "nemotron", "exaone4", "smollm3", "arcee",
        "bitnet", "diffllama", "seed_oss", "apertus", "ministral", "mixtral", "qwen2_moe", "qwen3_moe",
        "olmoe", "granitemoe", "jetmoe", "dbrx", "llama4_text", "gpt_oss", "mamba",
        "mamba2", "rwkv", "recurrent_gemma", "falcon_mamba", "bamba", "jamba", "lfm2", "xlstm",
        "reformer", "xlnet", "prophetnet", "gpt_neox_japanese", "hunyuan_v1_dense", "ernie4_5",
        "minimax", "zamba", "doge", "vaultgemma", "internlm3", "modernbert-decoder")),
    # encoders (sequence-classification head)
    *(Arch(t, "classify") for t in (
        "deberta", "convbert", "mpnet", "funnel", "mobilebert", "squeezebert", "fnet", "canine",
        "roformer", "rembert", "big_bird", "longformer", "nystromformer", "yoso", "mra", "ibert",
        "megatron-bert", "xlm", "flaubert", "ernie", "modernbert", "esm", "layoutlm", "xmod",
        "roberta-prelayernorm", "data2vec-text", "camembert", "xlm-roberta-xl", "luke", "eurobert")),
    # encoder-decoders
    *(Arch(t, "seq2seq") for t in (
        "mbart", "marian", "pegasus", "blenderbot", "blenderbot-small", "m2m_100", "mt5", "umt5",
        "longt5", "switch_transformers", "led", "plbart", "fsmt", "mvp", "pegasus_x",
        "bigbird_pegasus", "nllb-moe")),
    # image classification
    Arch("swin", "image", {"num_heads": [2, 4], "window_size": 2, "patch_size": 4, "embed_dim": 16}),
    Arch("swinv2", "image", {"num_heads": [2, 4], "window_size": 2, "patch_size": 4, "embed_dim": 16}),
    *(Arch(t, "image") for t in (
        "deit", "beit", "dinov2", "convnextv2", "regnet", "mobilenet_v2", "mobilevit",
        "efficientnet", "levit", "poolformer", "pvt", "pvt_v2", "segformer", "focalnet", "bit", "cvt",
        "data2vec-vision", "ijepa", "vit_msn", "hiera")),
]
BY_TYPE = {arch.model_type: arch for arch in SWEEP}


class Skip(Exception):
    """The model cannot be built or does not run eagerly: not partialdyn's business."""


class Timeout(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# building


def transformers_module():
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


def tiny_config(model_type: str, extra: dict):
    """The model type's config with every TINY key it knows (constructor argument or attribute)."""
    from transformers import CONFIG_MAPPING
    config_class = CONFIG_MAPPING[model_type]
    known = set(inspect.signature(config_class.__init__).parameters) | set(config_class().to_dict())
    values = {key: value for key, value in TINY.items() if key in known}
    values.update(extra)
    try:
        return config_class(**values)
    except Exception:   # some derived checks (head_dim, layer_types) reject a combination: drop the extras
        values.pop("head_dim", None)
        return config_class(**values)


def build(arch: Arch) -> torch.nn.Module:
    from transformers.models.auto import modeling_auto
    tf = transformers_module()
    mapping = getattr(modeling_auto, TASK_MAPPINGS[arch.task])
    if arch.model_type not in mapping:
        raise Skip(f"no {arch.task} model class in this transformers")
    try:
        config = tiny_config(arch.model_type, arch.extra)
        if arch.task == "classify":
            config.num_labels = 3
        torch.manual_seed(0)
        class_name = mapping[arch.model_type]
        if isinstance(class_name, (list, tuple)):   # several classes for one type: the first is the plain one
            class_name = class_name[0]
        model = getattr(tf, class_name)(config)
    except Exception as error:
        raise Skip(f"build: {type(error).__name__}: {first_line(error)}") from error
    size = sum(p.numel() for p in model.parameters())
    if size > MAX_PARAMETERS:
        raise Skip(f"build: {size} parameters, the tiny config missed a size key")
    return model.eval()


def padding_mask(batch: int, length: int) -> torch.Tensor:
    """Right padding: the last row of a batch of 2 or more ends with 3 padded positions."""
    mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        mask[-1, -3:] = 0
    return mask


def calls(arch: Arch, model: torch.nn.Module, padded: bool = False) -> list[dict]:
    """The stream's keyword arguments, deterministic; `padded` adds an attention_mask to token inputs."""
    g = torch.Generator().manual_seed(0)
    config = model.config
    vocab = min(getattr(config, "vocab_size", VOCAB) or VOCAB, VOCAB)
    if arch.task == "image":
        side = getattr(config, "image_size", 32)
        side = side[0] if isinstance(side, (list, tuple)) else side
        channels = getattr(config, "num_channels", 3)
        return [{"pixel_values": torch.randn(b, channels, side, side, generator=g)} for b in IMAGE_BATCHES]
    stream = [{"input_ids": torch.randint(3, vocab, (b, t), generator=g)} for b, t in STREAM]
    if arch.task == "seq2seq":
        for kwargs, (b, t) in zip(stream, STREAM):
            kwargs["decoder_input_ids"] = torch.randint(3, vocab, (b, max(2, t // 2)), generator=g)
    if padded:
        for kwargs, (b, t) in zip(stream, STREAM):
            kwargs["attention_mask"] = padding_mask(b, t)
    return stream


# ---------------------------------------------------------------------------------------------
# running


def first_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else "")[:limit]


def clone_call(kwargs: dict) -> dict:
    return {name: value.clone() if isinstance(value, torch.Tensor) else value for name, value in kwargs.items()}


def mismatch(got, want) -> str | None:
    """None when every tensor of `got` matches `want`, else what differs."""
    a, b = tensors_of(got), tensors_of(want)
    if type(got) is not type(want) or len(a) != len(b):
        return f"structure: {type(got).__name__} with {len(a)} tensors vs {type(want).__name__} with {len(b)}"
    for index, (x, y) in enumerate(zip(a, b)):
        try:
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)
        except AssertionError as error:
            return f"tensor {index}: {first_line(error)} ({' '.join(str(error).split())[:200]})"
    return None


def run_eagerly(model, stream):
    try:
        with torch.no_grad():
            return [model(**clone_call(kwargs)) for kwargs in stream]
    except Exception as error:
        raise Skip(f"eager: {type(error).__name__}: {first_line(error)}") from error


def run_optimized(model, stream, expected, result: dict) -> None:
    """The stream through partialdyn; fills status / detail of `result`."""
    optimized = partialdyn.optimize(model, backend="eager")
    with torch.no_grad():
        for index, (kwargs, want) in enumerate(zip(stream, expected)):
            try:
                got = optimized(**clone_call(kwargs))
            except Timeout:
                raise
            except Exception as error:
                result.update(status="CRASH", detail=f"call {index}: {type(error).__name__}: {first_line(error)}",
                              traceback=traceback.format_exc())
                return
            result["compiles_by_call"].append(partialdyn.stats(optimized)["compiles"])
            wrong = mismatch(got, want)
            if wrong:
                result.update(status="MISMATCH", detail=f"call {index}: {wrong}")
                return
    result["stats"] = partialdyn.stats(optimized)


def reasons(kind: str) -> list[str]:
    """Distinct `file:line reason` of the events of `kind`, in order of first appearance."""
    seen = {}
    for event in partialdyn.events(kind):
        where = f"{Path(event.get('file') or '?').name}:{event.get('line')}"
        seen.setdefault(f"{where} {event.get('reason')}", None)
    return list(seen)


def on_alarm(_signum, _frame):
    raise Timeout()


def sweep_one(arch: Arch, timeout: int, padded: bool = False) -> dict:
    """Build, run eagerly, run optimized; never raises."""
    result = {"model": arch.model_type, "task": arch.task, "status": "ok", "detail": "", "stats": {},
              "compiles_by_call": []}
    partialdyn.reset()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = build(arch)
            stream = calls(arch, model, padded)
            expected = run_eagerly(model, stream)
            run_optimized(model, stream, expected, result)
        result["warnings"] = sorted({first_line(w.message, 300) for w in caught
                                     if str(w.message).startswith("partialdyn")})
    except Skip as error:
        result.update(status="skip", detail=str(error))
    except Timeout:
        result.update(status="TIMEOUT", detail=f"more than {timeout} s")
    except MemoryError:
        result.update(status="skip", detail="out of memory (a size key was not made tiny)")
    except Exception as error:   # the sweep's own bug or an error outside the calls
        result.update(status="ERROR", detail=f"{type(error).__name__}: {first_line(error)}",
                      traceback=traceback.format_exc())
    finally:
        signal.alarm(0)
    result["breaks"] = reasons("graph_break")
    result["fallbacks"] = reasons("eager_fallback")
    return result


# ---------------------------------------------------------------------------------------------
# output

COLUMNS = ("model", "task", "status", "compiles", "after each call", "breaks", "fallbacks", "internal errors",
           "why")


def row(result: dict) -> str:
    s = result.get("stats") or {}
    why = result["detail"] or "; ".join(result["breaks"] + result["fallbacks"])
    why = why.replace("|", "\\|").replace("\n", " ")[:240]
    by_call = ",".join(map(str, result["compiles_by_call"]))
    cells = (result["model"], result["task"], result["status"], s.get("compiles", ""), by_call, s.get("graph_breaks", ""),
             s.get("eager_fallbacks", ""), s.get("internal_errors", ""), why)
    return "| " + " | ".join(str(c) for c in cells) + " |"


def print_details(result: dict) -> None:
    for title in ("breaks", "fallbacks", "warnings"):
        for line in result.get(title) or ():
            print(f"    {title[:-1]}: {line}")
    if result.get("traceback"):
        print("    " + result["traceback"].replace("\n", "\n    "))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model types (default: all of SWEEP)")
    parser.add_argument("--details", action="store_true", help="print every reason, warning and traceback")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per model (default 300)")
    parser.add_argument("--padded", action="store_true",
                        help="token models also get an attention_mask with right padding in batches of 2+")
    parser.add_argument("--list", action="store_true", help="print the model types and exit")
    args = parser.parse_args(argv)
    if args.list:
        for arch in SWEEP:
            print(arch.model_type, arch.task)
        return 0
    chosen = [BY_TYPE.get(name) or Arch(name, "causal") for name in args.models.split(",")] if args.models else SWEEP
    torch.set_num_threads(1)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, resource.RLIM_INFINITY))
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"transformers {transformers_module().__version__}\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for arch in chosen:
        result = sweep_one(arch, args.timeout, args.padded)
        print(row(result), flush=True)
        if args.details:
            print_details(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
