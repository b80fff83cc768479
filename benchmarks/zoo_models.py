"""The model zoo: Hugging Face architectures built from tiny configs with random weights.

Each entry builds a model (eval mode, seeded weights, nothing downloaded) and a stream
of calls (keyword arguments) that varies the batch and the sequence length (the image
size for convolutional models, the waveform length for wav2vec2), with one call of
batch 1. `tests/test_zoo.py` runs every entry against eager; `benchmarks/zoo.py`
compares partialdyn with torch.compile on the same streams.

Configs are tiny (2 layers, hidden 32, small vocabularies) so the whole zoo runs in a
few minutes on a small machine: the point is the Python the models run, not their size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # never download anything

VOCAB = 96
HIDDEN = 32
LAYERS = 2
HEADS = 4
FFN = 64

# (batch, length) of the six calls of a stream: batch and length both vary, call 3 has batch 1.
STREAM = ((2, 8), (3, 12), (2, 16), (1, 10), (4, 7), (2, 13))
# Images: (batch, side). Side stays a multiple of the patch size / total stride.
IMAGE_STREAM = ((2, 32), (3, 48), (2, 64), (1, 40), (4, 32), (2, 56))
# Waveforms: (batch, samples).
AUDIO_STREAM = ((2, 400), (3, 560), (2, 720), (1, 480), (4, 400), (2, 640))


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str                       # decoder | encoder | encoder-decoder | vision | audio
    build: Callable[[], torch.nn.Module]
    calls: Callable[[], list]         # list of keyword-argument dicts, deterministic


def transformers():
    import transformers as tf
    tf.logging.set_verbosity_error()
    return tf


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def token_calls(seed: int = 0, vocab: int = VOCAB) -> list:
    g = _gen(seed)
    return [{"input_ids": torch.randint(3, vocab, (b, t), generator=g)} for b, t in STREAM]


def seq2seq_calls(seed: int = 0, vocab: int = VOCAB) -> list:
    g = _gen(seed)
    return [{"input_ids": torch.randint(3, vocab, (b, t), generator=g),
             "decoder_input_ids": torch.randint(3, vocab, (b, max(2, t // 2)), generator=g)} for b, t in STREAM]


def image_calls(seed: int = 0, fixed_side: int | None = None) -> list:
    g = _gen(seed)
    return [{"pixel_values": torch.randn(b, 3, fixed_side or side, fixed_side or side, generator=g)}
            for b, side in IMAGE_STREAM]


def waveform_calls(seed: int = 0) -> list:
    g = _gen(seed)
    return [{"input_values": torch.randn(b, n, generator=g)} for b, n in AUDIO_STREAM]


def whisper_calls(seed: int = 0) -> list:
    """The encoder's input length is fixed by the config (2 x max_source_positions frames)."""
    g = _gen(seed)
    return [{"input_features": torch.randn(b, 16, 32, generator=g),
             "decoder_input_ids": torch.randint(3, VOCAB, (b, t), generator=g)} for b, t in STREAM]


def _model(class_name: str, config_name: str, **config):
    def build():
        tf = transformers()
        torch.manual_seed(0)
        return getattr(tf, class_name)(getattr(tf, config_name)(**config)).eval()
    return build


_DECODER = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, max_position_embeddings=64)
_ENCODER = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, max_position_embeddings=64)

ZOO = [
    ZooModel("gpt2", "decoder", _model("GPT2Model", "GPT2Config", vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS,
                                        n_head=HEADS, n_positions=64), token_calls),
    ZooModel("llama", "decoder", _model("LlamaModel", "LlamaConfig", num_key_value_heads=2, **_DECODER), token_calls),
    ZooModel("mistral", "decoder", _model("MistralModel", "MistralConfig", num_key_value_heads=2, **_DECODER),
             token_calls),
    ZooModel("qwen2", "decoder", _model("Qwen2Model", "Qwen2Config", num_key_value_heads=2, **_DECODER), token_calls),
    ZooModel("phi", "decoder", _model("PhiModel", "PhiConfig", **_DECODER), token_calls),
    ZooModel("gpt_neox", "decoder", _model("GPTNeoXModel", "GPTNeoXConfig", **_DECODER), token_calls),
    ZooModel("opt", "decoder", _model("OPTModel", "OPTConfig", vocab_size=VOCAB, hidden_size=HIDDEN, ffn_dim=FFN,
                                       num_hidden_layers=LAYERS, num_attention_heads=HEADS, word_embed_proj_dim=HIDDEN,
                                       max_position_embeddings=64), token_calls),
    ZooModel("bloom", "decoder", _model("BloomModel", "BloomConfig", vocab_size=VOCAB, hidden_size=HIDDEN,
                                         n_layer=LAYERS, n_head=HEADS), token_calls),
    ZooModel("falcon", "decoder", _model("FalconModel", "FalconConfig", vocab_size=VOCAB, hidden_size=HIDDEN,
                                          num_hidden_layers=LAYERS, num_attention_heads=HEADS), token_calls),
    ZooModel("gemma", "decoder", _model("GemmaModel", "GemmaConfig", num_key_value_heads=1, head_dim=8, **_DECODER),
             token_calls),
    ZooModel("bert", "encoder", _model("BertModel", "BertConfig", **_ENCODER), token_calls),
    ZooModel("roberta", "encoder", _model("RobertaModel", "RobertaConfig", pad_token_id=1,
                                           **{**_ENCODER, "max_position_embeddings": 66}), token_calls),
    ZooModel("distilbert", "encoder", _model("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=HIDDEN,
                                              hidden_dim=FFN, n_layers=LAYERS, n_heads=HEADS,
                                              max_position_embeddings=64), token_calls),
    ZooModel("albert", "encoder", _model("AlbertModel", "AlbertConfig", embedding_size=16, **_ENCODER), token_calls),
    ZooModel("electra", "encoder", _model("ElectraModel", "ElectraConfig", embedding_size=16, **_ENCODER),
             token_calls),
    ZooModel("deberta_v2", "encoder", _model("DebertaV2Model", "DebertaV2Config", relative_attention=True,
                                              position_buckets=16, pos_att_type=["p2c", "c2p"], **_ENCODER),
             token_calls),
    ZooModel("t5", "encoder-decoder", _model("T5Model", "T5Config", vocab_size=VOCAB, d_model=HIDDEN, d_ff=FFN,
                                              d_kv=8, num_layers=LAYERS, num_heads=HEADS, decoder_start_token_id=0),
             seq2seq_calls),
    ZooModel("bart", "encoder-decoder", _model("BartModel", "BartConfig", vocab_size=VOCAB, d_model=HIDDEN,
                                                encoder_layers=LAYERS, decoder_layers=LAYERS,
                                                encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
                                                encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                                                max_position_embeddings=64), seq2seq_calls),
    ZooModel("vit", "vision", _model("ViTModel", "ViTConfig", image_size=32, patch_size=8, hidden_size=HIDDEN,
                                      num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN),
             lambda: image_calls(fixed_side=32)),
    ZooModel("convnext", "vision", _model("ConvNextModel", "ConvNextConfig", hidden_sizes=[8, 16], depths=[1, 1],
                                           num_stages=2, out_features=None), image_calls),
    ZooModel("resnet", "vision", _model("ResNetModel", "ResNetConfig", embedding_size=8, hidden_sizes=[8, 16],
                                         depths=[1, 1], layer_type="basic"), image_calls),
    ZooModel("wav2vec2", "audio", _model("Wav2Vec2Model", "Wav2Vec2Config", hidden_size=HIDDEN,
                                          num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                                          conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                          vocab_size=32), waveform_calls),
    ZooModel("whisper", "audio", _model("WhisperModel", "WhisperConfig", vocab_size=VOCAB, d_model=HIDDEN,
                                         encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                                         decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                                         num_mel_bins=16, max_source_positions=16, max_target_positions=32,
                                         pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1),
             whisper_calls),
]

BY_NAME = {m.name: m for m in ZOO}


def tensors_of(output) -> list:
    """Every tensor of a model output, in a fixed order: fields of model outputs, items of tuples,
    lists and dicts, and the keys and values of each layer of a KV cache."""
    found = []

    def visit(value):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):          # ModelOutput is an OrderedDict of its non-None fields
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif hasattr(value, "self_attention_cache"):   # EncoderDecoderCache
            visit(value.self_attention_cache)
            visit(value.cross_attention_cache)
        elif hasattr(value, "layers"):                 # DynamicCache and friends
            for layer in value.layers:
                visit([getattr(layer, "keys", None), getattr(layer, "values", None)])
    visit(output)
    return found
