"""evaluate.device: one resolution (auto | cpu | cuda[:N]) for classification, span QA, perplexity and latency, with
CUDA mocked (this machine has no GPU); rows and latency setups name the device; CPU numbers as before."""

import json

import pytest
import tiny
import torch

from kronbench.cli import main
from kronbench.errors import KronbenchError
from kronbench.evaluate import latency
from kronbench.evaluate.device import device_name
from kronbench.evaluate.run import evaluate, resolve_device


@pytest.fixture
def gpu(monkeypatch):
    """torch as it looks on a machine with two GPUs named 'Fake H200' (nothing is moved to them here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_device")
    return {"cls": tiny.bert_model(root / "cls", "sequence_classification"), "pair": tiny.pair_task(root / "pair"),
            "qa_model": tiny.bert_model(root / "qa_model", "question_answering"), "qa": tiny.qa_task(root / "qa"),
            "gpt2": tiny.gpt2_model(root / "gpt2"), "lm": tiny.lm_task(root / "lm")}


def test_auto_picks_cuda_when_torch_sees_a_gpu(gpu):
    assert resolve_device("auto") == torch.device("cuda") and resolve_device(None).type == "cuda"
    assert resolve_device("cpu") == torch.device("cpu")  # asked for: stays on the CPU
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert device_name(resolve_device("auto")) == "cuda (Fake H200)"
    assert device_name("cuda:1") == "cuda:1 (Fake H200)"
    with pytest.raises(KronbenchError, match="torch sees 2 GPU"):
        resolve_device("cuda:2")


def test_auto_picks_cpu_otherwise_and_cuda_is_an_error(no_gpu):
    assert resolve_device("auto") == torch.device("cpu") and device_name(resolve_device("AUTO")) == "cpu"
    with pytest.raises(KronbenchError, match=r"evaluate.device is 'cuda' but torch sees no GPU.*use auto or cpu"):
        resolve_device("cuda")
    with pytest.raises(KronbenchError, match=r"evaluate.device 'gpu': use auto, cpu, cuda or cuda:<index>"):
        resolve_device("gpu")


def test_latency_setup_names_the_device(gpu):
    """compare_models's setup starts with where_timed: the GPU's name on CUDA, the CPU model and threads else."""
    assert latency.where_timed(resolve_device("auto"), 8) == "cuda (Fake H200)"
    cpu = latency.where_timed(resolve_device("cpu"), 2)
    assert cpu.startswith("cpu (") and cpu.endswith("), 2 threads")


def test_latency_refuses_cuda_without_a_gpu(no_gpu):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=64))
    with pytest.raises(KronbenchError, match="torch sees no GPU"):
        latency.measure_latency(model, batch_size=1, seq_len=8, device="cuda")
    out = latency.measure_latency(model, batch_size=1, seq_len=8, device="auto", threads=1, min_rounds=1,
                                  max_seconds=0.5)
    assert out["latency_setup"].startswith("cpu (")


@pytest.mark.parametrize("model, data, metric", [("cls", "pair", "accuracy"), ("qa_model", "qa", "f1"),
                                                 ("gpt2", "lm", "perplexity")])
def test_rows_record_the_device_and_cpu_equals_auto_without_gpu(world, no_gpu, model, data, metric):
    """Classification, span QA and perplexity: rows name the device; auto on a CPU-only machine is the CPU, with
    the same numbers; cuda stops before the checkpoint is loaded, naming the key."""
    split = "test" if data == "lm" else "validation"
    cpu = evaluate(str(world[model]), world[data], split, device="cpu")
    auto = evaluate(str(world[model]), world[data], split, device="auto")
    assert {r["eval_device"] for r in cpu + auto} == {"cpu"}
    assert [(r["metric"], r["value"]) for r in cpu] == [(r["metric"], r["value"]) for r in auto]
    assert metric in {r["metric"] for r in cpu}
    with pytest.raises(KronbenchError, match="evaluate.device is 'cuda'"):
        evaluate(str(world[model]), world[data], split, device="cuda")


def test_cli_device_flag(world, no_gpu, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    assert main(["evaluate-task", "--model", str(world["cls"]), "--data", str(world["pair"]), "--device", "cpu",
                 "--out", str(out)]) == 0
    assert {json.loads(x)["eval_device"] for x in out.read_text().splitlines()} == {"cpu"}
    assert " on cpu" in capsys.readouterr().out
    code = main(["evaluate-task", "--model", str(world["cls"]), "--data", str(world["pair"]), "--device", "cuda",
                 "--out", str(tmp_path / "x.jsonl")])
    assert code == 2 and "torch sees no GPU" in capsys.readouterr().err
