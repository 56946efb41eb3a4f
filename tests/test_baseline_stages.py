"""Baseline stages (distil, ROSITA) and the Table 6 ablation chains on tiny random BERTs; pruned checkpoints."""

import json

import pytest
import torch
import transformers

import tiny
from kronbench.baselines import factorize_embedding, prune_ffn, prune_heads
from kronbench.baselines.rosita import count_target_params, drop_layers, structure
from kronbench.baselines.stages import baseline_distil, baseline_rosita, rosita_layer_map, segment_configs
from kronbench.distill import stages
from kronbench.errors import KronbenchError
from kronbench.evaluate.run import evaluate
from kronbench.models import checkpoints
from kronbench.models.counting import count_params

STEPS = {"lr": 1e-3, "max_steps": 3, "batch_size": 8, "checkpoint_every": 0, "log_every": 1}
TARGETS = {"layers": 3, "heads": 2, "ffn": 16, "emb_rank": 8}  # of 4 layers, 4 heads, FFN 64, d 32


def _bert4(path, head):
    """tiny.bert_model with 4 layers (alternate layers → [0, 3]; ROSITA 4 → 3 takes the non-divisible rule)."""
    tok = tiny.bert_tokenizer(path)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  attn_implementation="eager")
    torch.manual_seed(0)
    cls = {"masked_lm": transformers.BertForMaskedLM, "base": transformers.BertModel,
           "sequence_classification": transformers.BertForSequenceClassification}[head]
    cls(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline_stages")
    return {"mlm": _bert4(root / "mlm", "masked_lm"), "base": _bert4(root / "base", "base"),
            "cls": _bert4(root / "cls", "sequence_classification"), "bert2": tiny.bert_model(root / "bert2"),
            "pair": tiny.pair_task(root / "pair"), "lm": tiny.lm_task(root / "lm")}


def _info(model_dir):
    return json.loads((model_dir / "kronbench_run.json").read_text())


def _log_terms(run_dir):
    return set(json.loads((run_dir / "log.jsonl").read_text().splitlines()[0]))


# --------------------------------------------------------------------------------------------- distil
def test_distil_student_is_half_the_teacher(world, tmp_path):
    """lr 0: the saved student is exactly the initialisation; half the blocks, copied from teacher blocks [0, 3]."""
    s = baseline_distil(str(world["mlm"]), world["lm"], tmp_path / "d", {**STEPS, "lr": 0.0, "weight_decay": 0.0},
                        block_size=32)
    assert s["layer_map"] == [0, 3] and s["preset"] == "L2" and s["steps"] == 3
    student, _ = checkpoints.load(str(tmp_path / "d/model"))
    teacher, _ = checkpoints.load(str(world["mlm"]))
    assert type(student) is type(teacher) and student.config.num_hidden_layers == 2
    assert student.config.kronbench_distil_layers == [0, 3]
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for name, value in s_state.items():
        src = name.replace("layer.1.", "layer.3.")  # student block 1 = teacher block 3
        assert torch.equal(value, t_state[src]), name
    cfg = json.loads((tmp_path / "d/config.json").read_text())
    assert cfg["weights"] == {"logit_kd": 5.0, "lm": 2.0, "cos": 1.0} and cfg["temperature"] == 2.0
    assert {"logit_kd", "lm", "cos"} <= _log_terms(tmp_path / "d")
    info = _info(tmp_path / "d/model")
    assert info["method"] == "distil" and info["preset"] == "L2" and info["lineage"][-1]["stage"] == "baseline-distil"


def test_distil_headless_teacher_then_task_stage(world, tmp_path):
    """MiniLM-like bare BertModel: cos + hid_mse; then task ILKD with the summary's layer_map, then evaluate."""
    s = baseline_distil(str(world["base"]), world["lm"], tmp_path / "d", STEPS, block_size=32)
    cfg = json.loads((tmp_path / "d/config.json").read_text())
    assert cfg["weights"] == {"cos": 1.0, "hid_mse": 1.0} and cfg["headless_teacher"]
    assert {"cos", "hid_mse"} <= _log_terms(tmp_path / "d")
    stages.distill("task", str(tmp_path / "d/model"), str(world["cls"]), world["pair"], tmp_path / "t", STEPS,
                   loss={"layer_map": s["layer_map"]})
    assert {"att_mse", "hid_mse", "logit_kd", "ce"} <= _log_terms(tmp_path / "t")
    task_student, _ = checkpoints.load(str(tmp_path / "t/model"))  # the distil layers survive the head swap
    assert task_student.config.kronbench_distil_layers == s["layer_map"] == [0, 3]
    rows = evaluate(str(tmp_path / "t/model"), world["pair"], "validation")
    assert rows[0]["method"] == "distil" and rows[0]["preset"] == "L2"
    assert rows[0]["train_seconds"] == pytest.approx(sum(x["train_seconds"] for x in
                                                         _info(tmp_path / "t/model")["lineage"]), abs=0.05)


# --------------------------------------------------------------------------------------------- rosita
def test_rosita_layer_map():
    assert rosita_layer_map(6, 4) == [0, 2, 3, 5]  # MiniLM-L6 → 4 (ROSITA's modulo rule)
    assert rosita_layer_map(12, 8) == [0, 2, 3, 5, 6, 8, 9, 11]  # BERT-base → 8
    assert rosita_layer_map(12, 6) == [1, 3, 5, 7, 9, 11] and rosita_layer_map(4, 3) == [0, 1, 3]
    assert segment_configs({"lr": 1, "final": {"lr": 2}})["final"] == {"lr": 2}
    with pytest.raises(KronbenchError, match="train.width"):
        segment_configs({"width": 3})


def test_rosita_prunes_to_targets_resumes_and_evaluates(world, tmp_path):
    run = tmp_path / "r"
    train = {**STEPS, "final": {"max_steps": 4, "stop_after": 2, "checkpoint_every": 2}}
    part = baseline_rosita(str(world["cls"]), world["pair"], run, train, targets=TARGETS, prune_steps=2)
    assert part["interrupted"] and part["segment"] == "final" and not (run / "summary.json").exists()
    done = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (run / "segments").iterdir()
            if (p / "summary.json").exists()}
    assert sorted(done) == ["00-depth", "01-width-1"]
    with pytest.raises(KronbenchError, match="another config"):  # a changed plan never reuses old segments
        baseline_rosita(str(world["cls"]), world["pair"], run, train, targets={**TARGETS, "ffn": 8}, prune_steps=2)
    s = baseline_rosita(str(world["cls"]), world["pair"], run, {**train, "final": {"max_steps": 4,
                                                                                    "checkpoint_every": 2}},
                        targets=TARGETS, prune_steps=2)
    assert all((run / "segments" / n / "summary.json").stat().st_mtime_ns == t for n, t in done.items())  # skipped
    assert [g["steps"] for g in s["segments"]] == [3, 3, 4]
    assert s["structure"] == {"heads": [2, 2, 2], "ffn": [16] * 3, "emb_rank": 8}
    width1 = json.loads((run / "segments/01-width-1/summary.json").read_text())
    assert width1["widths"] == {"layers": 3, "heads": 3, "ffn": 40, "emb_rank": 20}  # halfway, rounded
    kept = json.loads((run / "segments/02-final/kept.json").read_text())
    assert [len(kept["heads"][str(i)]) for i in range(3)] == [2, 2, 2]  # indices into width-1's 3 heads
    depth = json.loads((run / "segments/00-depth/summary.json").read_text())
    assert depth["layer_map"] == [0, 1, 3] and width1["layer_map"] == "identity"
    assert {"emb_mse", "hid_mse", "logit_kd"} == _log_terms(run / "segments/02-final") - {
        "stage", "step", "epoch", "lr", "loss", "seconds"}
    teacher_config = transformers.AutoConfig.from_pretrained(world["cls"])
    assert s["params_target"] == count_target_params(teacher_config, TARGETS) == s["params_backbone"]

    model, _ = checkpoints.load(str(run / "model"))
    assert structure(model) == s["structure"] and count_params(model) == s["params"]
    info = _info(run / "model")
    assert info["method"] == "rosita" and info["preset"] == "rosita"
    assert [x["stage"] for x in info["lineage"]] == ["rosita-depth", "rosita-width-1", "rosita-final"]
    rows = evaluate(str(run / "model"), world["pair"], "validation")
    assert rows[0]["method"] == "rosita" and rows[0]["params"] == s["params"]
    assert rows[0]["train_seconds"] == pytest.approx(s["train_seconds"], abs=0.05)


def test_rosita_default_steps_and_bad_targets(world, tmp_path):
    with pytest.raises(KronbenchError, match=r"targets\['heads'\]=9"):
        baseline_rosita(str(world["cls"]), world["pair"], tmp_path / "x", STEPS, targets={"heads": 9}, prune_steps=1)
    s = baseline_rosita(str(world["cls"]), world["pair"], tmp_path / "r", {**STEPS, "max_steps": 1},
                        targets={**TARGETS, "heads": 1, "emb_rank": None})  # one head per step: 4 → 1 in 3 steps
    assert [g["segment"] for g in s["segments"]] == ["depth", "width-1", "width-2", "final"]
    assert [g["structure"]["heads"][0] for g in s["segments"]] == [4, 3, 2, 1]
    assert s["structure"]["emb_rank"] is None and s["params_backbone"] == s["params_target"]


# --------------------------------------------------------------------------------------------- pruned checkpoints
@pytest.mark.parametrize("head", ["masked_lm", "sequence_classification", "gpt2"])
def test_pruned_checkpoint_round_trip_and_swap_head(world, tmp_path, head):
    if head == "gpt2":
        src = tiny.gpt2_model(tmp_path / "src")
    else:
        src = world["mlm"] if head == "masked_lm" else world["cls"]
    model, tok = checkpoints.load(str(src))
    drop_layers(model, [0, 1])
    prune_heads(model, {0: [1, 2], 1: [3]})
    prune_ffn(model, {0: list(range(10)), 1: [5, 6]})
    factorize_embedding(model, 8)
    checkpoints.save(model.eval(), tok, tmp_path / "p", {"method": "rosita"})
    back = checkpoints.load(str(tmp_path / "p"))[0].eval()  # load returns train mode (dropout on)
    assert type(back) is type(model) and structure(back) == structure(model)
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, model(input_ids=ids).logits)
        assert count_params(back) == count_params(model)
        bare, _ = checkpoints.load(str(tmp_path / "p"), head="base")  # swap_head restructures the new class
        torch.testing.assert_close(bare.eval()(input_ids=ids).last_hidden_state,
                                   model.base_model(input_ids=ids).last_hidden_state)


# --------------------------------------------------------------------------------------------- ablations
def test_ablation_chains(world, tmp_path):
    """KroneckerBERT Table 6 as configurations of existing stages; the method lands in kronbench_run.json."""
    bert, pair, lm = str(world["bert2"]), world["pair"], world["lm"]
    stages.finetune_teacher(bert, pair, tmp_path / "teacher", STEPS)
    stages.compress(bert, "cf=2", tmp_path / "s0")
    s0, teacher = str(tmp_path / "s0/model"), str(tmp_path / "teacher/model")
    ce_only = {"weights": {"ce": 1}}
    stages.distill("task", s0, None, pair, tmp_path / "decompose-only", STEPS, loss=ce_only,
                   meta={"method": "decompose-only"})
    stages.distill("task", s0, teacher, pair, tmp_path / "no-kd-pretrain", STEPS, meta={"method": "no-kd-pretrain"})
    stages.distill("pretrain", s0, bert, lm, tmp_path / "kd-pretrain", STEPS, block_size=32)
    stages.distill("task", str(tmp_path / "kd-pretrain/model"), None, pair, tmp_path / "no-task-kd", STEPS,
                   loss=ce_only, meta={"method": "no-task-kd"})
    for method, terms in (("decompose-only", {"ce"}), ("no-kd-pretrain", {"emb_mse", "att_mse", "hid_mse",
                                                                          "logit_kd", "ce"}),
                          ("no-task-kd", {"ce"})):
        info = _info(tmp_path / method / "model")
        assert info["method"] == method and info["preset"] == "cf=2"
        logged = _log_terms(tmp_path / method) - {"stage", "step", "epoch", "lr", "loss", "seconds"}
        assert logged == terms, method
    assert [x["stage"] for x in _info(tmp_path / "no-task-kd/model")["lineage"]] == [
        "compress", "distill-pretrain", "distill-task"]
