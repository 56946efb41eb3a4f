"""Every stage on tiny random BERT/GPT-2 models: runs, learns, resumes exactly, fails clearly, writes rows."""

import json
from collections import Counter

import pytest
import tiny
import torch
from safetensors.torch import load_file

from kronbench.cli import main
from kronbench.data.features import Collator
from kronbench.distill import stages
from kronbench.distill.loop import LoopConfig, train
from kronbench.errors import KronbenchError
from kronbench.evaluate.run import evaluate
from kronbench.rows import SCORED as ROW_KEYS  # the keys a scored row carries

TRAIN = {"lr": 1e-3, "epochs": 2, "batch_size": 8, "checkpoint_every": 4, "log_every": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    return {"root": root, "bert": tiny.bert_model(root / "bert", "masked_lm"), "gpt2": tiny.gpt2_model(root / "gpt2"),
            "pair": tiny.pair_task(root / "pair"), "lm": tiny.lm_task(root / "lm")}


def _weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_bert_chain(world, tmp_path):
    """finetune-teacher -> compress -> distill pretrain (ILKD + MLM) -> distill task -> evaluate."""
    r, out = world, tmp_path
    stages.finetune_teacher(str(r["bert"]), r["pair"], out / "teacher", TRAIN)
    summary = stages.compress(str(r["bert"]), "cf=2", out / "s0")
    assert summary["params"] < summary["params_dense"]
    s1 = stages.distill("pretrain", str(out / "s0/model"), str(r["bert"]), r["lm"], out / "s1", TRAIN,
                        loss={"normalize": True}, block_size=32)
    cfg = json.loads((out / "s1/config.json").read_text())
    assert cfg["weights"].keys() >= {"emb_mse", "att_mse", "hid_mse", "lm", "logit_kd"}  # MLM head present
    assert s1["steps"] == s1["total_steps"] > 0
    stages.distill("task", str(out / "s1/model"), str(out / "teacher/model"), r["pair"], out / "s2", TRAIN)
    log = [json.loads(x) for x in (out / "s2/log.jsonl").read_text().splitlines()]
    assert {"emb_mse", "att_mse", "hid_mse", "logit_kd", "ce"} <= set(log[0])
    assert not (out / "s2/checkpoints").exists()  # dropped once the model is saved
    rows = evaluate(str(out / "s2/model"), r["pair"], "validation")
    assert {row["metric"] for row in rows} == {"accuracy", "f1"}
    row = rows[0]
    assert set(ROW_KEYS) <= set(row)
    assert row["method"] == "kronecker" and row["preset"] == "cf=2" and row["task"] == "embedded-pair"
    assert row["params"] == summary["params"] - 0 or row["params"] > 0
    assert row["latency_ms"] is None  # timed side by side by compare_latency, filled in by gather
    # compress + pretrain + task stage seconds
    assert row["train_seconds"] == pytest.approx(sum(json.loads((out / d / "summary.json").read_text()).get(
        "train_seconds", json.loads((out / d / "summary.json").read_text()).get("seconds")) for d in
        ("s0", "s1", "s2")), abs=0.05)


def test_gpt2_chain(world, tmp_path):
    """pretrain-lm (tokenizer + GPT-2 from scratch) -> compress kngpt2 -> distill pretrain (att_kl) -> LM eval."""
    r, out = world, tmp_path
    stages.pretrain_lm("gpt2-embedded", r["lm"], out / "t", {**TRAIN, "max_steps": 3}, vocab_size=300, block_size=32)
    info = json.loads((out / "t/model/kronbench_run.json").read_text())
    assert info["label"] == "self-pretrained"
    stages.compress(str(out / "t/model"), "cf=2", out / "s0")
    stages.distill("pretrain", str(out / "s0/model"), str(out / "t/model"), r["lm"], out / "s1",
                   {**TRAIN, "max_steps": 4}, block_size=32)
    cfg = json.loads((out / "s1/config.json").read_text())
    assert cfg["weights"] == {"emb_mse": 1.0, "att_kl": 1.0, "hid_mse": 1.0, "lm": 1.0}  # KnGPT2 preset
    rows = evaluate(str(out / "s1/model"), r["lm"], "test")
    assert rows[0]["metric"] == "perplexity" and rows[0]["protocol"] == "zeroshot-stride"
    assert rows[0]["value"] > 1 and rows[0]["label"] == "self-pretrained"


def test_gpt2_task_head_from_teacher(world, tmp_path):
    r, out = world, tmp_path
    stages.finetune_teacher(str(r["gpt2"]), r["pair"], out / "t", {**TRAIN, "max_steps": 2})
    stages.compress(str(r["gpt2"]), "cf=2", out / "s0")
    stages.distill("task", str(out / "s0/model"), str(out / "t/model"), r["pair"], out / "s1",
                   {**TRAIN, "max_steps": 2}, loss={"layer_map": "identity"})
    cfg = json.loads((out / "s1/config.json").read_text())
    assert cfg["weights"] == {"emb_mse": 1.0, "att_kl": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "ce": 1.0}
    teacher, student = _weights(out / "t"), _weights(out / "s1")
    assert "score.weight" in student and student["score.weight"].shape == teacher["score.weight"].shape


def _fixed_batch_run(world, tmp_path, cfg, objective_model):
    from kronbench.data.features import encode, read_split, task_of
    from kronbench.models import checkpoints

    model, tok = checkpoints.load(str(world["bert"]), head="sequence_classification", num_labels=2)
    task = task_of(world["pair"])
    data = encode(task, read_split(world["pair"], "train"), tok)
    return model, tok, data


def test_loss_decreases_on_fixed_batch(world, tmp_path):
    """Task ILKD (KroneckerBERT Eq. 14 terms) of a cf=2 student on the same 8 examples: the loss falls."""
    from kronbench.distill.losses import PRESETS
    from kronbench.distill.objectives import ilkd
    from kronbench.models.surgery import kroneckerize

    teacher, tok, data = _fixed_batch_run(world, tmp_path, None, None)
    student, _, _ = _fixed_batch_run(world, tmp_path, None, None)
    kroneckerize(student, "cf=2")
    cfg = LoopConfig(lr=3e-3, max_steps=20, batch_size=8, warmup_ratio=0, log_every=1, checkpoint_every=0)
    objective = ilkd(teacher.eval(), "pair_classification", PRESETS["kroneckerbert"], normalize=True)
    train(student, objective, data[:8] * 4, Collator(tok.pad_token_id), cfg, tmp_path, "t", teacher=teacher)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3]), losses


def test_resume_equals_uninterrupted(world, tmp_path):
    """Stop after 6 of 28 steps (checkpoint), rerun: final weights equal a run that never stopped (CPU)."""
    r = world
    loss = {"normalize": True}
    stages.compress(str(r["bert"]), "cf=2", tmp_path / "s0")
    student = str(tmp_path / "s0/model")
    full = stages.distill("pretrain", student, str(r["bert"]), r["lm"], tmp_path / "full", TRAIN, loss=loss,
                          block_size=32)
    part = stages.distill("pretrain", student, str(r["bert"]), r["lm"], tmp_path / "resumed",
                          {**TRAIN, "stop_after": 6}, loss=loss, block_size=32)
    assert part["interrupted"] and not (tmp_path / "resumed/model").exists()
    stages.distill("pretrain", student, str(r["bert"]), r["lm"], tmp_path / "resumed", TRAIN, loss=loss,
                   block_size=32)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa: E731
                       for x in p.read_text().splitlines()]
    assert strip(tmp_path / "full/log.jsonl") == strip(tmp_path / "resumed/log.jsonl")
    assert full["steps"] == full["total_steps"] > part["steps"] == 6


def test_same_seed_same_weights(world, tmp_path):
    for name in ("a", "b"):
        stages.finetune_teacher(str(world["bert"]), world["pair"], tmp_path / name, {**TRAIN, "max_steps": 3})
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_config(world, tmp_path):
    stages.compress(str(world["bert"]), "cf=2", tmp_path / "s0")
    args = (str(tmp_path / "s0/model"), str(world["bert"]), world["lm"], tmp_path / "r")
    stages.distill("pretrain", *args, {**TRAIN, "stop_after": 4}, block_size=32)
    with pytest.raises(KronbenchError, match="another config.*lr"):
        stages.distill("pretrain", *args, {**TRAIN, "lr": 5e-4}, block_size=32)


def test_nan_loss_names_stage_step_term(world, tmp_path):
    from kronbench.distill.losses import NonFiniteLossError

    model, tok, data = _fixed_batch_run(world, tmp_path, None, None)

    def objective(m, batch, step):
        loss = m(**{k: v for k, v in batch.items() if k != "labels"}).logits.sum()
        if step == 2:
            raise NonFiniteLossError("att_mse", float("nan"))
        return loss, {}

    cfg = LoopConfig(max_steps=5, batch_size=4, checkpoint_every=0)
    with pytest.raises(KronbenchError, match=r"stage distill-task: step 3: loss term 'att_mse' is not finite"):
        train(model, objective, data, Collator(tok.pad_token_id), cfg, tmp_path, "distill-task")


def test_bad_settings_name_the_key(world, tmp_path, capsys):
    code = main(["finetune-teacher", "--model", str(world["bert"]), "--data", str(world["pair"]), "--out",
                 str(tmp_path / "x"), "--set", "train.learning_rate=1e-4"])
    assert code == 2 and "unknown key(s) ['learning_rate']" in capsys.readouterr().err
    code = main(["distill-task", "--student", str(world["bert"]), "--data", str(world["pair"]),
                 "--out", str(tmp_path / "y"), "--set", "loss.weights=nope"])
    assert code == 2 and "unknown preset 'nope'" in capsys.readouterr().err


def test_cli_evaluate_writes_rows(world, tmp_path):
    stages.finetune_teacher(str(world["bert"]), world["pair"], tmp_path / "t", {**TRAIN, "max_steps": 2})
    out = tmp_path / "rows.jsonl"
    assert main(["evaluate-task", "--model", str(tmp_path / "t/model"), "--data", str(world["pair"]), "--out", str(out),
                 "--label", "tiny-bert"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["accuracy", "f1"] and rows[0]["model"] == "tiny-bert"
    assert rows[0]["method"] == "teacher" and rows[0]["latency_ms"] is None


def test_qa_chain(world, tmp_path):
    """SQuAD-style span QA: teacher fine-tuning, task ILKD with span logit KD + span CE, EM/F1 rows."""
    qa = tiny.qa_task(tmp_path / "qa")
    bert = tiny.bert_model(tmp_path / "bert", "question_answering")
    stages.finetune_teacher(str(bert), qa, tmp_path / "t", {**TRAIN, "max_steps": 3})
    stages.compress(str(bert), "cf=2", tmp_path / "s0")
    stages.distill("task", str(tmp_path / "s0/model"), str(tmp_path / "t/model"), qa, tmp_path / "s1",
                   {**TRAIN, "max_steps": 3})
    log = json.loads((tmp_path / "s1/log.jsonl").read_text().splitlines()[0])
    assert {"att_mse", "hid_mse", "logit_kd", "ce"} <= set(log)
    rows = evaluate(str(tmp_path / "s1/model"), qa, "validation")
    assert {r["metric"] for r in rows} == {"exact_match", "f1"}
    assert all(0 <= r["value"] <= 100 for r in rows)


def test_hub_teacher_keeps_its_mlm_head(world, tmp_path):
    """A Hub id (here a fake offline Hub cache, as a cluster's pre-downloaded one) loads with the head its config
    names (BertForMaskedLM), so compress keeps the MLM head and KD pre-training keeps the lm and logit_kd terms."""
    import os
    import shutil
    import subprocess
    import sys

    sha = "0" * 40
    repo = tmp_path / "hub" / "models--kronbench-test--tiny-bert"
    shutil.copytree(world["bert"], repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    script = (
        "import json, sys\n"
        "from kronbench.distill import stages\n"
        "from kronbench.models import checkpoints\n"
        "model, _ = checkpoints.load('kronbench-test/tiny-bert')\n"
        "stages.compress('kronbench-test/tiny-bert', 'cf=2', sys.argv[1] + '/s0')\n"
        "stages.distill('pretrain', sys.argv[1] + '/s0/model', 'kronbench-test/tiny-bert', sys.argv[2],\n"
        "               sys.argv[1] + '/s1', {'max_steps': 2, 'batch_size': 4}, block_size=32)\n"
        "cfg = json.load(open(sys.argv[1] + '/s1/config.json'))\n"
        "print(type(model).__name__, sorted(cfg['weights']), cfg['dropped_terms'])\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(world["lm"])], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last == "BertForMaskedLM ['att_mse', 'emb_mse', 'hid_mse', 'lm', 'logit_kd'] []", last


def _pair_kinds(tok, texts, feats) -> list[str]:
    """next / same (A's own text, >= 3 sentences away) / other (another text) for each [CLS] A [SEP] B [SEP]."""
    from kronbench.data.corpora import split_sentences

    sents = [[tok(x, add_special_tokens=False)["input_ids"] for x in split_sentences(t)] for t in texts]
    kinds = []
    for f in feats:
        ids, types = f["input_ids"], f["token_type_ids"]
        sep = ids.index(tok.sep_token_id)
        a, b = ids[1:sep], ids[sep + 1:-1]
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert types == [0] * (sep + 1) + [1] * (len(b) + 1)
        d = next(d for d, doc in enumerate(sents) if a in doc)
        i = sents[d].index(a)
        if i + 1 < len(sents[d]) and b == sents[d][i + 1]:
            kinds.append("next")
        elif any(abs(j - i) >= 3 for j, x in enumerate(sents[d]) if x == b):
            kinds.append("same")
        else:
            assert any(b in doc for e, doc in enumerate(sents) if e != d), (i, d)
            kinds.append("other")
    return kinds


def test_sentence_pair_corpus(world, tmp_path):
    """KD pre-training on BERT's [CLS] A [SEP] B [SEP] format: B follows A in its text or comes from another."""
    from transformers import AutoTokenizer

    from kronbench.data.features import sentence_pair_features

    tok = AutoTokenizer.from_pretrained(world["bert"])
    texts = [". ".join(s.capitalize() for s in tiny.sentences(6, seed)) + "." for seed in range(8)]
    feats = sentence_pair_features(tok, texts, max_length=64, seed=0, copies=2)
    assert len(feats) == 2 * 8 * 6
    kinds = _pair_kinds(tok, texts, feats)
    assert "same" not in kinds  # hard_fraction 0: B follows A or comes from another text
    assert 0.3 < kinds.count("next") / len(feats) < 0.6  # half of the 5-in-6 sentences that have a next one
    lm = tiny.prepared(tmp_path / "lm", "embedded-lm", {"train": tiny.texts_rows(texts),
                                                         "validation": tiny.texts_rows(texts[:2]),
                                                         "test": tiny.texts_rows(texts[2:4])})
    stages.compress(str(world["bert"]), "cf=2", tmp_path / "s0")
    stages.distill("pretrain", str(tmp_path / "s0/model"), str(world["bert"]), lm, tmp_path / "s1",
                   {**TRAIN, "max_steps": 3}, format="sentence_pairs", copies=1)
    assert json.loads((tmp_path / "s1/config.json").read_text())["format"] == "sentence_pairs"
    stages.compress(str(world["gpt2"]), "cf=2", tmp_path / "g0")
    with pytest.raises(KronbenchError, match="data.format: sentence_pairs is BERT's input format"):
        stages.distill("pretrain", str(tmp_path / "g0/model"), str(world["gpt2"]), lm, tmp_path / "g1",
                       {**TRAIN, "max_steps": 3}, format="sentence_pairs")
    for key, bad in (("copies", 0), ("hard_fraction", 1.5), ("hard_fraction", "half")):
        with pytest.raises(KronbenchError, match=f"data.{key}: .*; give"):
            stages.distill("pretrain", str(tmp_path / "s0/model"), str(world["bert"]), lm, tmp_path / "s2",
                           {**TRAIN, "max_steps": 3}, format="sentence_pairs", **{key: bad})
        assert not (tmp_path / "s2").exists()  # refused before anything is written


@pytest.mark.parametrize("hard_fraction", [1.0, 0.5])
def test_sentence_pairs_with_same_text_partners(world, hard_fraction):
    """data.hard_fraction: that share of the non-next partners come from A's own text, >= 3 sentences away."""
    from transformers import AutoTokenizer

    from kronbench.data.corpora import split_sentences
    from kronbench.data.features import sentence_pair_features

    tok = AutoTokenizer.from_pretrained(world["bert"])
    texts = [". ".join(s.capitalize() for s in tiny.sentences(10, seed)) + "." for seed in range(6)]
    assert min(len(split_sentences(t)) for t in texts) > 6  # room for a partner 3 sentences away
    feats = sentence_pair_features(tok, texts, max_length=64, seed=0, copies=4, hard_fraction=hard_fraction)
    kinds = {"next": 0, "same": 0, "other": 0, **Counter(_pair_kinds(tok, texts, feats))}
    assert 0.35 < kinds["next"] / len(feats) < 0.6, kinds
    share = kinds["same"] / (kinds["same"] + kinds["other"])
    assert (share == 1.0) if hard_fraction == 1.0 else (0.35 < share < 0.65), kinds


def test_task_kd_with_unlabelled_transfer_set(world, tmp_path):
    """data.transfer adds corpus sentence pairs without labels: KD terms train on them, CE on the task rows."""
    from transformers import AutoTokenizer

    from kronbench.data.features import task_of

    texts = [". ".join(s.capitalize() for s in tiny.sentences(6, seed)) + "." for seed in range(8)]
    lm = tiny.prepared(tmp_path / "lm", "embedded-lm", {"train": tiny.texts_rows(texts),
                                                         "validation": tiny.texts_rows(texts[:2]),
                                                         "test": tiny.texts_rows(texts[2:4])})
    tok = AutoTokenizer.from_pretrained(world["bert"])
    extra = stages.transfer_dataset(task_of(world["pair"]), lm, tok, seed=0, copies=2)
    assert len(extra) == 2 * 8 * 6 and {f["labels"] for f in extra} == {stages.UNLABELLED}
    stages.finetune_teacher(str(world["bert"]), world["pair"], tmp_path / "t", {**TRAIN, "max_steps": 2})
    stages.compress(str(world["bert"]), "cf=2", tmp_path / "s0")
    args = (str(tmp_path / "s0/model"), str(tmp_path / "t/model"), world["pair"])
    stages.distill("task", *args, tmp_path / "s", {**TRAIN, "max_steps": 3}, transfer=str(lm), copies=2)
    cfg = json.loads((tmp_path / "s/config.json").read_text())
    assert cfg["transfer"] == str(lm) and cfg["copies"] == 2
    log = [json.loads(x) for x in (tmp_path / "s/log.jsonl").read_text().splitlines()]
    assert all(r["ce"] == r["ce"] for r in log if "ce" in r)  # finite even for batches of transfer rows only
    with pytest.raises(KronbenchError, match="data.transfer: an unlabelled transfer set needs --teacher"):
        stages.distill("task", args[0], None, world["pair"], tmp_path / "x", {**TRAIN, "max_steps": 1},
                       loss={"weights": {"ce": 1.0}}, transfer=str(lm))
    with pytest.raises(KronbenchError, match="give a prepared LM corpus"):
        stages.distill("task", *args, tmp_path / "y", {**TRAIN, "max_steps": 1}, transfer=str(world["pair"]))
