"""Real Hugging Face models built from a config (random weights, no download); transformers is a test extra."""
import pytest
import torch
import transformers

import partialdyn

transformers.logging.set_verbosity_error()


pytestmark = pytest.mark.usefixtures("fresh_partialdyn")   # tests/conftest.py


def test_gpt2_with_its_kv_cache_compiles_once_without_breaks():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, bos_token_id=0,
                                     eos_token_id=0)
    model = transformers.GPT2Model(config).eval()
    opt = partialdyn.optimize(model)
    with torch.no_grad():
        for t in (5, 9, 12):
            ids = torch.randint(0, 1000, (2, t))
            got, want = opt(ids), model(ids)
            torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state)
            assert type(got.past_key_values) is type(want.past_key_values)
            assert got.past_key_values.get_seq_length() == t
            torch.testing.assert_close(got.past_key_values.layers[1].keys, want.past_key_values.layers[1].keys)
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 1 and stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0


def test_bert_tuple_output_compiles_once_without_breaks():
    torch.manual_seed(0)
    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=1000)
    model = transformers.BertModel(config).eval()
    opt = partialdyn.optimize(model)
    with torch.no_grad():
        for t in (5, 9, 12):
            ids = torch.randint(0, 1000, (2, t))
            torch.testing.assert_close(opt(ids, return_dict=False), model(ids, return_dict=False))
    stats = partialdyn.stats(opt)
    assert stats["compiles"] == 1 and stats["graph_breaks"] == 0 and stats["eager_fallbacks"] == 0
