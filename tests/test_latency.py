"""Latency as one comparison: tiny BERT (with and without heads), GPT-2 and Kronecker-compressed models timed
round-robin in one process; the plan/gather contract that puts the figures into result rows."""

import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, GPT2Config, GPT2LMHeadModel

from kronbench.errors import KronbenchError
from kronbench.evaluate.latency import compare_models, head_of, latency_key, measure_latency, read_latency
from kronbench.models.surgery import kroneckerize
from kronbench.report.gather import gather

TINY_BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64)
TINY_GPT2 = dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64)


def _kron_gpt2():
    model = GPT2LMHeadModel(GPT2Config(**TINY_GPT2))
    kroneckerize(model, "cf=2", init="random")
    return model


@pytest.mark.parametrize("build", [lambda: BertModel(BertConfig(**TINY_BERT)),
                                   lambda: BertForSequenceClassification(BertConfig(**TINY_BERT)),
                                   lambda: GPT2LMHeadModel(GPT2Config(**TINY_GPT2)), _kron_gpt2])
def test_latency_reports_median_spread_and_setup(build):
    model = build()
    before = torch.get_num_threads()
    out = measure_latency(model, batch_size=2, seq_len=16, threads=1, min_rounds=3, max_seconds=1.0)
    assert out["latency_ms"] > 0 and out["latency_iqr_ms"] >= 0 and out["latency_repeats"] >= 3
    assert isinstance(out["latency_noisy"], bool)
    assert "1 threads, batch 2 x seq 16, fp32, median of" in out["latency_setup"]
    assert out["latency_setup"].startswith("cpu (") and "round-robin" in out["latency_setup"]
    assert torch.get_num_threads() == before


def test_compare_models_gives_ratios_to_each_models_teacher():
    """A model twice as deep takes about twice as long, measured in the same rounds; the teacher is 1.0."""
    torch.manual_seed(0)
    big = {**{k: v for k, v in TINY_BERT.items() if k != "num_hidden_layers"}, "hidden_size": 128,
           "intermediate_size": 512}
    models = {"t": BertModel(BertConfig(**big, num_hidden_layers=2)),
              "deep": BertModel(BertConfig(**big, num_hidden_layers=4)), "alone": BertModel(BertConfig(**TINY_BERT))}
    out = compare_models(models, teachers={"t": "t", "deep": "t", "alone": None}, batch_size=8, seq_len=32,
                         threads=1, min_rounds=7, max_seconds=5)
    e = out["entries"]
    assert e["t"]["latency_vs_teacher"] == 1.0 and e["alone"]["latency_vs_teacher"] is None
    assert 1.5 < e["deep"]["latency_vs_teacher"] < 2.5, e["deep"]
    assert "over 3 models" in out["setup"]


def test_compare_models_rejects_bad_input():
    m = BertModel(BertConfig(**TINY_BERT))
    with pytest.raises(KronbenchError, match="seq_len"):
        measure_latency(GPT2LMHeadModel(GPT2Config(**TINY_GPT2)), seq_len=128)
    with pytest.raises(KronbenchError, match="teacher 'x' is not among"):
        compare_models({"a": m}, teachers={"a": "x"})


def test_keys_and_heads():
    assert head_of("lm") == "lm" and head_of("span_qa") == "qa" and head_of("pair_classification") == "cls"
    assert latency_key("minilm-l6", "kronecker", "cf=8", "cls") == "minilm-l6|kronecker-cf=8|cls"
    assert latency_key("gpt2", "teacher", None, "lm") == "gpt2|teacher|lm"


def _row(**kw):
    return {"model": "m", "method": "teacher", "preset": None, "task": "embedded-pair", "split": "validation",
            "seed": 0, "metric": "accuracy", "value": 70.0, "latency_ms": None, **kw}


def test_gather_puts_latency_into_rows_and_refuses_untimed_ones(tmp_path):
    lat = tmp_path / "lat.json"
    entry = {"latency_ms": 5.0, "latency_iqr_ms": 0.1, "latency_repeats": 9, "latency_noisy": False,
             "latency_vs_teacher": 1.0}
    lat.write_text(json.dumps({"seed": 0, "setup": "cpu (x), 2 threads", "entries": {"m|teacher|cls": entry}}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(_row()) + "\n")
    gather([rows], tmp_path / "all.jsonl", latency=[lat])
    got = json.loads((tmp_path / "all.jsonl").read_text())
    assert got["latency_ms"] == 5.0 and got["latency_setup"] == "cpu (x), 2 threads" and got["latency_repeats"] == 9
    assert read_latency([lat])[(0, "m|teacher|cls")]["latency_vs_teacher"] == 1.0
    distil = tmp_path / "distil.jsonl"  # the distil run is named without its preset (L2) in the plan
    distil.write_text(json.dumps(_row(method="distil", preset="L2")) + "\n")
    lat.write_text(json.dumps({"seed": 0, "setup": "s", "entries": {"m|teacher|cls": entry, "m|distil|cls": entry}}))
    gather([rows, distil], tmp_path / "all.jsonl", latency=[lat])
    other = tmp_path / "rows2.jsonl"
    other.write_text(json.dumps(_row(method="kronecker", preset="cf=8")) + "\n")
    with pytest.raises(KronbenchError, match=r"rows2.jsonl:1: no latency entry 'm\|kronecker-cf=8\|cls' for seed 0"):
        gather([rows, other], tmp_path / "all2.jsonl", latency=[lat])
    assert not (tmp_path / "all2.jsonl").exists()  # nothing half-written
    with pytest.raises(KronbenchError, match="not a latency file"):
        gather([rows], tmp_path / "all3.jsonl", latency=[rows])


def test_compare_latency_plan_takes_run_dirs_and_base_model_names(tmp_path):
    """A run's model dir must exist; a base model (a Hub id pinned as gpt2@<commit>, an embedded name) is loaded by
    name: the paper grid's LM rows time gpt2 and distilgpt2 themselves."""
    from kronbench.evaluate.latency import compare_latency

    missing = [{"key": "m|kronecker-kb8|cls", "checkpoint": str(tmp_path / "runs" / "x" / "model"), "teacher": None}]
    with pytest.raises(KronbenchError, match="no checkpoint at"):
        compare_latency(missing, seed=0)
    plan = [{"key": "minilm-l6|teacher|base", "checkpoint": "minilm-l6", "teacher": "minilm-l6|teacher|base"}]
    out = compare_latency(plan, seed=0, batch_size=1, seq_len=8, max_seconds=1, min_rounds=1)
    assert out["checkpoints"] == {"minilm-l6|teacher|base": "minilm-l6"}
