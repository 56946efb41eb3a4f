"""Kernel autotuning (kron/orders.py): keys per CPU, the margin rule, reuse without re-timing, tune_seconds kept
out of train_seconds. Fake timings make the rule deterministic; the real path runs on 8×8 shapes."""

import json
import time

import pytest
import torch
from torch import nn

from kronbench import timing
from kronbench.kron import orders
from kronbench.kron.flops import kron_flops
from kronbench.kron.linear import KERNELS, KroneckerLinear

CPU = torch.device("cpu")
SHAPE = (4, 4, 4, 4, 1, 100, torch.float32, CPU)


@pytest.fixture
def fresh(fresh_kernel_cache):
    return fresh_kernel_cache


def fake(medians: dict[str, float], ci: float = 0.01, other_load: float | None = 0.0) -> timing.Comparison:
    rows = {k: {"median_ms": v, "iqr_ms": v * ci, "repeats": 9, "ci_rel": ci, "noisy": False}
            for k, v in medians.items()}
    return timing.Comparison(rows, 9, 0.1, other_load, 0.25, 1)


def faked(medians, **kw):
    """What `measure` returns: the comparison and the screened-out kernels (none here)."""
    return fake(medians, **kw), {}


def test_flop_default_is_the_cheaper_order_then_the_preference():
    # KB21 attention A 384×48, B 2×16: A (X Bᵀ) is cheaper (flops.py); among its kernels one GEMM comes first
    assert orders.flop_default(384, 48, 2, 16, 1, KERNELS) == "a_xb.gemm"
    assert orders.flop_default(2, 16, 384, 48, 1, KERNELS) == "ax_b.gemm"
    assert min(orders.order_flops(384, 48, 2, 16, 2).values()) == kron_flops(384, 48, 2, 16, 2)
    assert orders.flop_default(4, 4, 4, 4, 1, KERNELS) == "ax_b.gemm"  # equal FLOPs: PREFERENCE alone
    assert orders.flop_default(4, 4, 4, 4, 1, {"einsum": None, "a_xb.bmm": None}) == "a_xb.bmm"  # einsum last


def test_challenger_within_the_spread_keeps_the_default():
    d = "a_xb.gemm"
    assert orders.decide(fake({d: 10.0, "ax_b.t": 9.7}), d)["kernel"] == d  # 3 % < the 5 % floor
    wide = orders.decide(fake({d: 10.0, "ax_b.t": 9.0}, ci=0.1), d)  # 10 % faster, CIs ±10 % each: √2·10 %
    assert wide["kernel"] == d and wide["margin"] == pytest.approx(0.1414, abs=1e-3)
    assert orders.decide(fake({d: 10.0, "ax_b.t": 9.0}), d)["kernel"] == "ax_b.t"  # tight CIs: 10 % is real
    assert orders.decide(fake({d: 10.0, "ax_b.t": 9.0}, other_load=1.5), d)["kernel"] == d  # loaded: 20 %
    entry = orders.decide(fake({d: 10.0, "ax_b.t": 5.0, "einsum": 7.0}, other_load=1.5), d)
    assert entry["kernel"] == "ax_b.t" and entry["margin"] == orders.LOADED_MARGIN
    assert set(entry) == {"kernel", "default", "margin", "spread", "medians_ms", "noisy", "when"}
    assert entry["medians_ms"] == {d: 10.0, "ax_b.t": 5.0, "einsum": 7.0}


def test_a_challenger_beyond_the_margin_with_a_tight_ci_wins_over_a_faster_wide_one():
    d = "ax_b.gemm"
    cmp = fake({d: 10.0, "ax_b.t": 8.0, "einsum": 8.5})
    cmp.rows["ax_b.t"]["ci_rel"] = 0.4  # fastest but unsure
    assert orders.decide(cmp, d)["kernel"] == "einsum"


def test_fresh_tune_then_reuse_without_retiming(fresh, monkeypatch):
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS} | {"einsum": 0.5}))
    assert orders.choose(*SHAPE, KERNELS) == "einsum"
    entry = next(iter(json.loads(fresh.read_text()).values()))
    assert entry["kernel"] == "einsum" and entry["default"] == "ax_b.gemm" and entry["noisy"] is False
    # a new process: the file, not the memory, answers
    monkeypatch.setattr(orders, "_memory", {})
    monkeypatch.setattr(orders, "_loaded", False)
    monkeypatch.setattr(orders, "measure", lambda *a, **k: pytest.fail("re-timed a cached shape"))
    assert orders.choose(*SHAPE, KERNELS) == "einsum"


def test_keys_name_the_cpu(fresh, monkeypatch):
    monkeypatch.setattr(orders, "cpu_identity", lambda device=None: "CPU A #1234")
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS} | {"ax_b.bmm": 0.5}))
    assert orders.choose(*SHAPE, KERNELS) == "ax_b.bmm"
    monkeypatch.setattr(orders, "cpu_identity", lambda device=None: "CPU B #5678")
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS} | {"a_xb.bmm": 0.5}))
    assert orders.choose(*SHAPE, KERNELS) == "a_xb.bmm"  # A's entry is not B's
    keys = sorted(json.loads(fresh.read_text()))
    assert len(keys) == 2 and keys[0].startswith("CPU A #1234|") and keys[1].startswith("CPU B #5678|")
    assert orders.cpu_identity() == "CPU B #5678"
    assert "|" not in orders._cpu_identity() and orders._cpu_identity()  # the real one: model (+ ISA hash)


def test_old_string_entries_are_ignored(fresh, monkeypatch):
    key = orders._key(4, 4, 4, 4, 1, 128, torch.float32, CPU)
    fresh.write_text(json.dumps({key: "einsum", "4x4|4x4|r1|N128|float32|cpu|t1": "einsum"}))
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS}))
    assert orders.choose(*SHAPE, KERNELS) == "ax_b.gemm"  # re-timed: the flop default holds
    assert all(isinstance(v, dict) for v in json.loads(fresh.read_text()).values())


def test_revalidate_keeps_or_replaces_the_incumbent(fresh, monkeypatch):
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS}))
    assert orders.revalidate(*SHAPE, KERNELS)["revalidated"] == "tuned"
    key = orders._key(4, 4, 4, 4, 1, 128, torch.float32, CPU)
    orders._memory[key]["kernel"] = "einsum"  # as if an earlier (noisy) tune had picked it
    near = {k: 1.0 for k in KERNELS} | {"einsum": 1.03}
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked(near))
    check = orders.revalidate(*SHAPE, KERNELS)
    assert check["revalidated"] == "kept" and check["kernel"] == "einsum" and check["default"] == "einsum"
    monkeypatch.setattr(orders, "measure", lambda *a, **k: faked({k: 1.0 for k in KERNELS} | {"einsum": 2.0}))
    check = orders.revalidate(*SHAPE, KERNELS)
    assert check["revalidated"] == "replaced" and check["kernel"] != "einsum"
    assert orders.choose(*SHAPE, KERNELS) == check["kernel"]
    assert json.loads(fresh.read_text())[key]["kernel"] == check["kernel"]
    monkeypatch.setenv("KRONBENCH_KRON_ORDER", "einsum")
    assert orders.revalidate(*SHAPE, KERNELS) == {"kernel": "einsum", "revalidated": "forced"}
    # flops: each shape's FLOP-cheaper default, nothing timed (ci/paper-smoke.sh)
    monkeypatch.setenv("KRONBENCH_KRON_ORDER", "flops")
    monkeypatch.setattr(orders, "measure", lambda *a, **k: pytest.fail("timed under KRONBENCH_KRON_ORDER=flops"))
    default = orders.flop_default(*SHAPE[:5], KERNELS)
    assert orders.choose(*SHAPE, KERNELS) == default
    assert orders.revalidate(*SHAPE, KERNELS) == {"kernel": default, "revalidated": "forced"}


def test_real_tune_is_counted_and_bounded(fresh, monkeypatch):
    monkeypatch.setitem(orders.TUNE, "max_seconds", 0.5)
    before = orders.tune_seconds()
    t0 = time.perf_counter()
    choice = orders.choose(8, 8, 8, 8, 2, 64, torch.float32, CPU, KERNELS)
    wall = time.perf_counter() - t0
    assert choice in KERNELS and 0 < orders.tune_seconds() - before <= wall < 2.0
    entry = next(iter(json.loads(fresh.read_text()).values()))
    assert set(entry["medians_ms"]) == set(KERNELS) and entry["margin"] >= orders.MIN_MARGIN


def test_screen_drops_slow_kernels_but_never_the_default(monkeypatch):
    monkeypatch.setitem(orders.TUNE, "max_seconds", 0.1)
    fast, slow = (lambda x, a, b: None), (lambda x, a, b: time.sleep(0.005))
    cmp, out = orders.measure(2, 2, 2, 2, 1, 16, torch.float32, CPU, {"fast": fast, "slow": slow, "slow2": slow},
                              "slow2")
    assert set(cmp.rows) == {"fast", "slow2"} and set(out) == {"slow"} and out["slow"] >= 5
    entry = orders.decide(cmp, "slow2", out)
    assert entry["kernel"] == "fast" and set(entry["medians_ms"]) == {"fast", "slow", "slow2"}


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = KroneckerLinear(8, 8, (4, 2))


def _objective(model, batch, step):
    return (model.lin(batch["x"]) ** 2).mean(), {}


def _collate(items):
    return {"x": torch.stack([i["x"] for i in items])}


def test_tune_seconds_are_not_train_seconds(fresh, monkeypatch, tmp_path):
    from kronbench.distill.loop import LoopConfig, train

    real = orders.measure
    monkeypatch.setitem(orders.TUNE, "max_seconds", 0.2)

    def slow(*a, **k):  # a tune that clearly costs something
        time.sleep(0.5)
        return real(*a, **k)

    monkeypatch.setattr(orders, "measure", slow)
    data = [{"x": torch.randn(8, generator=torch.Generator().manual_seed(i))} for i in range(32)]
    cfg = LoopConfig(lr=1e-3, max_steps=6, batch_size=8, checkpoint_every=0, log_every=2)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    part = train(_Tiny(), _objective, data, _collate, LoopConfig(**{**cfg.__dict__, "stop_after": 2}),
                 tmp_path / "run", "t")
    assert part["interrupted"]
    torch.manual_seed(0)
    out = train(_Tiny(), _objective, data, _collate, cfg, tmp_path / "run", "t")  # resumes, cache warm now
    wall = time.perf_counter() - t0
    assert out["tune_seconds"] >= 0.5  # the first part's tune, restored from the checkpoint
    assert out["train_seconds"] < wall - 0.5
    assert out["train_seconds"] + out["tune_seconds"] <= wall + 0.05
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(row["seconds"] <= out["train_seconds"] + 0.01 for row in log)


def test_stages_record_tune_seconds_per_lineage_entry(fresh, monkeypatch, tmp_path):
    import tiny
    from kronbench.distill import stages
    from kronbench.models import checkpoints

    monkeypatch.setitem(orders.TUNE, "max_seconds", 0.1)
    bert, pair = tiny.bert_model(tmp_path / "bert", "masked_lm"), tiny.pair_task(tmp_path / "pair")
    stages.compress(str(bert), "cf=2", tmp_path / "s0")
    summary = stages.finetune_teacher(str(tmp_path / "s0/model"), pair, tmp_path / "s1",
                                      {"max_steps": 2, "batch_size": 8, "checkpoint_every": 0})
    info = checkpoints.run_info(tmp_path / "s1/model")
    assert [x["stage"] for x in info["lineage"]] == ["compress", "finetune-teacher"]
    assert info["lineage"][-1]["tune_seconds"] == summary["tune_seconds"] > 0  # a fresh cache: shapes were timed
    assert info["tune_seconds"] == pytest.approx(sum(x["tune_seconds"] for x in info["lineage"]))
    assert summary["chain_tune_seconds"] == info["tune_seconds"]
