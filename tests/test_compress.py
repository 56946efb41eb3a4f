"""kroneckerize(model, spec) on tiny random BERT/GPT-2 configs, presets' counts on the real dims, save → load."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2ForSequenceClassification, GPT2LMHeadModel)

from kronbench.errors import KronbenchError
from kronbench.kron import KroneckerConcat, KroneckerEmbedding, KroneckerLinear, TiedKroneckerHead
from kronbench.models.counting import count_preset
from kronbench.models.presets import choose_a_shape, get_spec
from kronbench.models.surgery import kroneckerize, load_compressed, save_compressed

TINY_BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, attn_implementation="eager")
TINY_GPT2 = dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64, attn_implementation="eager")
SPEC = {"embedding": {"n": 4}, "attention": {"a_shape": [8, 4]}, "ffn_in": {"a_shape": [16, 4]},
        "ffn_out": {"a_shape": [4, 16]}}
FULL_RANK = {"embedding": {"n": 4, "rank": 4}, "attention": {"a_shape": [4, 4], "rank": 16},
             "ffn_in": {"a_shape": [8, 4], "rank": 32}, "ffn_out": {"a_shape": [4, 8], "rank": 32}}


def _ids(vocab=96, shape=(2, 10)):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cls,cfg", [(BertModel, BertConfig), (BertForSequenceClassification, BertConfig),
                                     (GPT2LMHeadModel, GPT2Config), (GPT2ForSequenceClassification, GPT2Config)])
def test_full_rank_compression_preserves_outputs(cls, cfg):
    torch.manual_seed(0)
    config = cfg(**(TINY_BERT if cfg is BertConfig else TINY_GPT2), pad_token_id=0)
    model = cls(config).eval()
    ids = _ids()
    with torch.no_grad():
        ref = model(input_ids=ids)[0]
        kroneckerize(model, FULL_RANK)
        out = model(input_ids=ids)[0]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    kinds = {type(m) for m in model.modules()}
    assert KroneckerEmbedding in kinds and KroneckerLinear in kinds
    assert (KroneckerConcat in kinds) == (cfg is GPT2Config)  # GPT-2's fused c_attn is split into Q, K, V


def test_tied_heads_follow_the_embedding():
    for model in (GPT2LMHeadModel(GPT2Config(**TINY_GPT2)), BertForMaskedLM(BertConfig(**TINY_BERT))):
        kroneckerize(model, SPEC)
        head = model.get_output_embeddings()
        assert isinstance(head, TiedKroneckerHead)
        emb = model.get_input_embeddings()
        logits = model(input_ids=_ids()).logits
        assert logits.shape[-1] == 96
        h = torch.randn(3, 32)
        expected = h @ emb.to_dense().T + (head.bias if head.bias is not None else 0)
        torch.testing.assert_close(head(h), expected, atol=1e-5, rtol=1e-5)


def test_layers_selection_and_errors():
    model = GPT2LMHeadModel(GPT2Config(**{**TINY_GPT2, "n_layer": 4}))
    kroneckerize(model, {"ffn_in": {"a_shape": [16, 4], "layers": "odd"}})
    kinds = [type(b.mlp.c_fc).__name__ for b in model.transformer.h]
    assert kinds == ["Conv1D", "KroneckerLinear", "Conv1D", "KroneckerLinear"]
    bert = BertModel(BertConfig(**TINY_BERT))
    with pytest.raises(KronbenchError, match=r"encoder.layer.0.attention.self.query.*does not divide.*choices"):
        kroneckerize(bert, {"attention": {"a_shape": [5, 4]}})
    with pytest.raises(KronbenchError, match="out of range"):
        kroneckerize(BertModel(BertConfig(**TINY_BERT)), {"ffn_in": {"a_shape": [16, 4], "layers": [7]}})
    with pytest.raises(KronbenchError, match="rank bound"):
        kroneckerize(BertModel(BertConfig(**TINY_BERT)), {"attention": {"a_shape": [8, 4], "rank": 999}})
    with pytest.raises(KronbenchError, match="matches no module"):
        kroneckerize(BertModel(BertConfig(**TINY_BERT)), {"attention": {"a_shape": [8, 4], "layers": []}})
    with pytest.raises(KronbenchError, match="unknown key"):
        get_spec({"atention": {"a_shape": [8, 4]}})
    with pytest.raises(KronbenchError, match="unknown preset.*kb8"):
        get_spec("kb7")


@pytest.mark.parametrize("cls,cfg", [(BertForSequenceClassification, BertConfig(**TINY_BERT)),
                                     (GPT2LMHeadModel, GPT2Config(**TINY_GPT2))])
def test_save_load_roundtrip(tmp_path, cls, cfg):
    torch.manual_seed(0)
    model = cls(cfg).eval()
    spec = kroneckerize(model, {**SPEC, "attention": {"cf": 4}})
    assert spec["attention"]["a_shape"] and "cf" not in spec["attention"]  # stored concrete
    save_compressed(model, tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["kronbench_spec"] == spec
    loaded = load_compressed(tmp_path / "ckpt")
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids)[0], model(input_ids=ids)[0])
    assert not list(tmp_path.glob(".ckpt.*"))  # no temp dir left behind


def test_cf_chooser_hits_target():
    for m, n, cf in [(384, 384, 8), (1536, 384, 8), (768, 768, 2), (3072, 768, 16)]:
        m1, n1 = choose_a_shape(m, n, cf)
        achieved = m * n / (m1 * n1 + (m // m1) * (n // n1))
        assert abs(achieved / cf - 1) < 0.05, (m, n, cf, m1, n1, achieved)


def test_preset_counts_on_paper_dims():
    kb21 = count_preset("bert-base-uncased", "kb21")
    assert abs(kb21["params"] - 5.2e6) <= 0.05e6  # Table 3: 5.2M
    assert abs(kb21["flops"] - 1.40e9) <= 0.01e9  # Table 1: 1.4B
    assert abs(kb21["teacher_flops"] - 21.7e9) <= 0.05e9  # Table 1: 21.7B
    kb8 = count_preset("bert-base-uncased", "kb8")
    assert 14.0e6 < kb8["params"] < 14.7e6  # literal reading of Table 1 (paper: 14.3M)
    kngpt2 = count_preset("gpt2", "kngpt2")
    assert abs(kngpt2["params"] - 83.9e6) < 0.1e6  # docs/sources.md §2.4: ~83M with the head tied
    minilm = count_preset("minilm-l6", "cf=8")
    assert abs(minilm["module_compression_factor"] - 8) < 0.1


def test_count_cli_json_and_bad_input():
    out = subprocess.run([sys.executable, "-m", "kronbench.cli", "count-preset", "--model", "bert-base-uncased",
                          "--preset", "kb21", "--json"], capture_output=True, text=True, check=True).stdout
    row = json.loads(out)
    for key in ("params", "params_no_head", "flops", "teacher_params", "teacher_flops", "compression_factor"):
        assert key in row
    bad = subprocess.run([sys.executable, "-m", "kronbench.cli", "count-preset", "--model", "bert-large", "--preset",
                          "kb8"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model 'bert-large'" in bad.stderr and "Traceback" not in bad.stderr


def test_table_presets_takes_count_files_before_or_after_out(tmp_path, capsys):
    from kronbench.cli import main

    files = []
    for preset in ("cf=4", "cf=8"):
        assert main(["count-preset", "--model", "minilm-l6", "--preset", preset, "--json"]) == 0
        files.append(tmp_path / f"{preset}.json")
        files[-1].write_text(capsys.readouterr().out)
    files = [str(f) for f in files]
    assert main(["table-presets", files[0], "--out", str(tmp_path / "a"), files[1]]) == 0
    assert main(["table-presets", "--out", str(tmp_path / "b"), *files]) == 0
    assert (tmp_path / "a.md").read_text() == (tmp_path / "b.md").read_text()
    assert "cf=4" in (tmp_path / "b.md").read_text() and "cf=8" in (tmp_path / "b.md").read_text()
    with pytest.raises(SystemExit):
        main(["table-presets", "--out", str(tmp_path / "c"), *files, "--bogus"])
