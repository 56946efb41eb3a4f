"""measure_latency on tiny BERT (with and without heads), GPT-2 and a Kronecker-compressed GPT-2."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, GPT2Config, GPT2LMHeadModel

from kronbench.errors import KronbenchError
from kronbench.evaluate.latency import measure_latency
from kronbench.models.surgery import compress

TINY_BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64)
TINY_GPT2 = dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64)


def _kron_gpt2():
    model = GPT2LMHeadModel(GPT2Config(**TINY_GPT2))
    compress(model, "cf=2", init="random")
    return model


@pytest.mark.parametrize("build", [lambda: BertModel(BertConfig(**TINY_BERT)),
                                   lambda: BertForSequenceClassification(BertConfig(**TINY_BERT)),
                                   lambda: GPT2LMHeadModel(GPT2Config(**TINY_GPT2)), _kron_gpt2])
def test_latency_reports_median_and_setup(build):
    model = build().train()
    before = torch.get_num_threads()
    out = measure_latency(model, batch_size=2, seq_len=16, repeats=3, warmup=1, threads=1)
    assert set(out) == {"latency_ms", "latency_setup"} and out["latency_ms"] > 0
    assert out["latency_setup"] == "cpu, 1 threads, batch 2 x seq 16, fp32, median of 3"
    assert torch.get_num_threads() == before and model.training  # threads and mode restored


def test_latency_default_setup_names_current_threads():
    out = measure_latency(BertModel(BertConfig(**TINY_BERT)), seq_len=8, repeats=2, warmup=0)
    assert out["latency_setup"].startswith(f"cpu, {torch.get_num_threads()} threads, batch 16 x seq 8")


def test_latency_rejects_seq_beyond_context():
    with pytest.raises(KronbenchError, match="seq_len"):
        measure_latency(GPT2LMHeadModel(GPT2Config(**TINY_GPT2)), seq_len=128, repeats=1)
