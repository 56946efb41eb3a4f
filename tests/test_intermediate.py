"""keep_intermediate: a finished stage deletes what no later stage reads (resumable checkpoints/, ROSITA's segment
models) after its model/ and summary.json are on disk, and records it in summary.json; --keep-intermediate keeps it."""

import json

import pytest
import torch
from safetensors.torch import load_file

import tiny
from kronbench.baselines.stages import baseline_rosita
from kronbench.cli import main
from kronbench.distill import loop, stages
from test_baseline_stages import STEPS, TARGETS, _bert4

TRAIN = {"lr": 1e-3, "max_steps": 6, "batch_size": 8, "checkpoint_every": 2, "log_every": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("intermediate")
    return {"bert": tiny.bert_model(root / "bert"), "cls4": _bert4(root / "cls4", "sequence_classification"),
            "pair": tiny.pair_task(root / "pair")}


@pytest.fixture
def synced(monkeypatch):
    """Record, at each deletion, whether model/ and summary.json were already written (loop._sync runs first)."""
    seen = []
    real = loop._sync

    def check(model, summary):
        seen.append((model / "config.json").is_file() and json.loads(summary.read_text())["config_hash"])
        real(model, summary)

    monkeypatch.setattr(loop, "_sync", check)
    return seen


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def _same_weights(a, b):
    x, y = load_file(str(a / "model/model.safetensors")), load_file(str(b / "model/model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_training_run_keeps_only_its_model(world, tmp_path, synced):
    """An interrupted run keeps its checkpoints (it resumes from them); the finished run deletes them after model/
    and summary.json are written; --keep-intermediate keeps them; the model is the same either way."""
    part = stages.finetune_teacher(str(world["bert"]), world["pair"], tmp_path / "t", {**TRAIN, "stop_after": 4})
    assert part["interrupted"] and sorted(p.name for p in (tmp_path / "t/checkpoints").iterdir()) == ["step-00000004"]
    done = stages.finetune_teacher(str(world["bert"]), world["pair"], tmp_path / "t", TRAIN)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["config.json", "log.jsonl", "model", "summary.json"]
    record = _summary(tmp_path / "t")["intermediate"]
    assert record == done["intermediate"] and record["deleted"] == ["checkpoints"] and record["bytes_freed"] > 10_000
    assert synced == [done["config_hash"]]  # deleted once model/ and the finished summary.json were there

    assert main(["finetune-teacher", "--model", str(world["bert"]), "--data", str(world["pair"]), "--out",
                 str(tmp_path / "k"), *(f"--set=train.{k}={v}" for k, v in TRAIN.items()), "--keep-intermediate"]) == 0
    kept = _summary(tmp_path / "k")["intermediate"]
    assert kept["kept"] == ["checkpoints"] and kept["bytes"] > 10_000
    assert [p.name for p in (tmp_path / "k/checkpoints").iterdir()] == ["step-00000006"]
    assert _same_weights(tmp_path / "t", tmp_path / "k")


def test_rosita_keeps_only_its_final_model(world, tmp_path, synced):
    """A finished ROSITA run deletes its segments' models (their logs and summaries stay) and still loads and
    scores; with keep_intermediate every segment model stays; a rerun of a finished run retrains to the same model."""
    args = (str(world["cls4"]), world["pair"])
    s = baseline_rosita(*args, tmp_path / "r", STEPS, targets=TARGETS, prune_steps=2)
    segs = ["00-depth", "01-width-1", "02-final"]
    assert sorted(p.name for p in (tmp_path / "r/segments").iterdir()) == segs
    for seg in segs:
        assert sorted(p.name for p in (tmp_path / "r/segments" / seg).iterdir()) == [
            "config.json", "kept.json", "log.jsonl", "summary.json"]
    record = _summary(tmp_path / "r")["intermediate"]
    assert record["deleted"] == [f"segments/{seg}/model" for seg in segs] and record["bytes_freed"] > 100_000
    assert s["intermediate"] == record and synced[-1] == s["config_hash"]
    assert (tmp_path / "r/model/model.safetensors").is_file()

    k = baseline_rosita(*args, tmp_path / "k", STEPS, targets=TARGETS, prune_steps=2, keep_intermediate=True)
    assert all((tmp_path / "k/segments" / seg / "model/model.safetensors").is_file() for seg in segs)
    assert k["intermediate"]["kept"] == record["deleted"]
    # the same models; each segment's kronbench_run.json holds its train seconds, whose digits vary in number
    assert abs(k["intermediate"]["bytes"] - record["bytes_freed"]) < 100
    assert _same_weights(tmp_path / "r", tmp_path / "k")

    again = baseline_rosita(*args, tmp_path / "r", STEPS, targets=TARGETS, prune_steps=2)  # segments retrained
    assert [g["steps"] for g in again["segments"]] == [3, 3, 3] and _same_weights(tmp_path / "r", tmp_path / "k")
    assert not (tmp_path / "r/segments/00-depth/model").exists()
