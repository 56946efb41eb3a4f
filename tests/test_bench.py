"""bench-kron and bench-ilkd on tiny settings: rows carry spreads, the noise flag and the kernel re-validation."""

import json

import pytest

from kronbench.bench import kron as bench
from kronbench.cli import main
from kronbench.kron import orders

# preset_shapes builds BERT-base per preset (~5 s); two small shapes stand in for them
SHAPES = [{"name": "t.attention", "m": 64, "n": 64, "a_shape": [32, 32], "rank": 1},
          {"name": "t.ffn_in", "m": 128, "n": 64, "a_shape": [8, 2], "rank": 2}]


@pytest.fixture
def fresh(fresh_kernel_cache, monkeypatch):
    monkeypatch.setitem(orders.TUNE, "max_seconds", 0.1)
    return fresh_kernel_cache


def test_bench_kron_rows(fresh, capsys, monkeypatch):
    monkeypatch.setattr(bench, "preset_shapes", lambda presets: [dict(s) for s in SHAPES])
    rows = bench.bench_kron(presets=("t",), tokens=16, repeats=3, encoder=False, max_seconds=0.1)
    assert [r["name"] for r in rows] == ["t.attention", "t.ffn_in"]
    for r in rows:
        assert {"name", "m", "n", "a_shape", "rank", "tokens", "dense_ms", "kron_ms", "speedup", "flop_ratio",
                "order", "setup", "dense_iqr_ms", "kron_iqr_ms", "noisy", "repeats", "revalidated"} <= set(r)
        assert r["revalidated"] == "tuned" and r["repeats"] >= 3 and r["speedup"] > 0
        assert isinstance(r["noisy"], bool) and bool(r["reasons"]) == r["noisy"]
    assert orders.cpu_identity() in rows[0]["setup"] and "threads" in rows[0]["setup"]
    cache = json.loads(fresh.read_text())
    assert sorted(e["kernel"] for e in cache.values()) == sorted(r["order"] for r in rows)
    # the second time the cached choices are re-validated, not tuned afresh
    main(["bench-kron", "--preset", "t", "--tokens", "16", "--repeats", "3", "--max-seconds", "0.1",
          "--no-encoder"])
    out = capsys.readouterr().out
    assert "speedup" in out and "IQR" in out and "t.ffn_in" in out
    assert out.count(" kept ") + out.count(" replaced") == 2


def test_bench_ilkd_row(fresh, monkeypatch):
    from transformers import BertConfig

    from kronbench.bench import ilkd as ilkd_bench

    small = BertConfig(vocab_size=20000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=256, max_position_embeddings=32)  # ids are drawn from [1000, 20000)
    monkeypatch.setattr(ilkd_bench, "get_config", lambda name: small)
    row = ilkd_bench.bench_ilkd("small", "cf=8", batch=2, seq=8, repeats=2, warmup=1, max_seconds=0)
    for name in ("plain_step", "ilkd_step", "ilkd_bf16_teacher_step", "teacher_forward", "teacher_forward_bf16"):
        assert row[f"{name}_ms"] > 0 and row[f"{name}_iqr_ms"] >= 0
    assert row["ratio"] > 0 and row["ratio_bf16_teacher"] > 0
    assert isinstance(row["noisy"], bool) and "median of 2 rounds" in row["setup"]


def test_bench_compress_row(tmp_path, monkeypatch):
    """Both inits run as the stage runs them, round-robin; the row keeps every round and says why it is noisy."""
    from test_calibrate import SPEC, _corpus
    from tiny import bert_model

    from kronbench.bench import compress as compress_bench

    monkeypatch.setattr(compress_bench, "startup_seconds", lambda: 1.5)  # a subprocess importing torch: slow here
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    row = compress_bench.bench_compress(str(bert_model(tmp_path / "bert", head="base")), str(spec),
                                        _corpus(tmp_path / "lm"), rounds=2, warmup=0,
                                        calibration={"sentences": 16, "heldout": 8, "batch_size": 8, "iters": 2})
    for init in ("nkp", "activation"):
        assert row[f"{init}_s"] > 0 and len(row[f"{init}_samples_s"]) == 2 and row[f"{init}_iqr_s"] >= 0
    assert row["command_s"] == pytest.approx(row["activation_s"] + 1.5, abs=0.02)
    assert row["noisy"] and any("too few for an interval" in r for r in row["reasons"])
    assert "median of 2 rounds after 0 warm-up" in row["setup"] and orders.cpu_identity() in row["setup"]
