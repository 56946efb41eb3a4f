"""compress --init activation on tiny random BERT / GPT-2: sequential fit on the student's own inputs, GPT-2's Conv1D
orientation, determinism, the error report, and calibration input errors."""

import copy
import json

import pytest
import torch
from tiny import bert_model, gpt2_model, llama_model, prepared, sentences

from kronbench.errors import KronbenchError
from kronbench.kron.fit import Moments, output_error
from kronbench.kron.linear import dense_weight
from kronbench.kron.nkp import kron_sum
from kronbench.models import checkpoints
from kronbench.models.calibrate import (_inputs, _Replay, fit_to_activations, forward_groups, kronecker_modules,
                                        teacher_copy)
from kronbench.models.surgery import kroneckerize

SPEC = {"embedding": {"n": 4}, "attention": {"a_shape": [8, 4]}, "ffn_in": {"a_shape": [16, 4]},
        "ffn_out": {"a_shape": [4, 16]}}


def _corpus(path, train=40, validation=12):
    def texts(n, seed):
        return [{"text": ". ".join(s.capitalize() for s in sentences(6, seed + i)) + "."} for i in range(n)]

    return prepared(path, "embedded-lm", {"train": texts(train, 0), "validation": texts(validation, 1000),
                                          "test": texts(2, 2000)})


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    base = tmp_path_factory.mktemp("calibrate")
    return {"bert": bert_model(base / "bert", head="base"), "gpt2": gpt2_model(base / "gpt2"),
            "llama": llama_model(base / "llama"), "corpus": _corpus(base / "lm")}


def _student(assets, family, settings=None, spec=SPEC):
    from kronbench.data.calibration import load_calibration

    net, tok = checkpoints.load(str(assets[family]))
    teacher = teacher_copy(net)
    kroneckerize(net, spec, init="nkp")
    calib = load_calibration(assets["corpus"], tok, {"sentences": 48, "heldout": 16, "batch_size": 16,
                                                     **(settings or {})})
    return net, teacher, calib


def test_sequential_fit_uses_the_students_own_inputs(assets):
    student, teacher, calib = _student(assets, "bert")
    report = fit_to_activations(student, teacher, calib, target="own")
    path = "encoder.layer.1.intermediate.dense"  # downstream of every layer-0 module and the embedding
    w = dense_weight(teacher.get_submodule(path)).detach()
    w_hat = student.get_submodule(path).to_dense().detach()
    own, theirs = None, None
    for b in calib.fit:
        xs, xt = _inputs(student, [path], b)[path], _inputs(teacher, [path], b)[path]
        ms, mt = Moments.of(xs, xs @ w.T), Moments.of(xt, xt @ w.T)
        own, theirs = (ms, mt) if own is None else (own + ms, theirs + mt)
    reported = report["modules"][path]["calibration"]["activation"]
    assert output_error(w_hat, own) == pytest.approx(reported, rel=1e-4)
    assert abs(output_error(w_hat, theirs) - reported) > 1e-3  # the teacher's inputs would give another error


GROUPS = {"bert": [["attention.self.query", "attention.self.key", "attention.self.value"], ["attention.output.dense"],
                   ["intermediate.dense"], ["output.dense"]],
          "gpt2": [["attn.c_attn"], ["attn.c_proj"], ["mlp.c_fc"], ["mlp.c_proj"]],
          "llama": [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                    ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]}
LAYERS = {"bert": "encoder.layer", "gpt2": "transformer.h", "llama": "model.layers"}


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_groups_in_forward_order_and_block_replay_matches_a_full_forward(assets, family):
    """Q, K, V share one group, nothing else does; replaying one block on cached hidden states gives the inputs a
    full forward gives, for the student and the teacher."""
    student, teacher, calib = _student(assets, family)
    groups = forward_groups(student, list(kronecker_modules(student)), calib.fit[0])
    layers = LAYERS[family]
    assert groups == [[f"{layers}.{i}.{s}" for s in g] for i in range(2) for g in GROUPS[family]]
    replay = _Replay(student, teacher, calib, [p for g in groups for p in g])
    for group in groups:
        replay.advance(replay.block_of(group[0]))
        for who, model in (("student", student), ("teacher", teacher)):
            for i, batch in enumerate(calib.fit):
                got, full = replay.inputs(who, i, group), _inputs(model, group, batch)
                for p in group:
                    assert torch.allclose(got[p], full[p], atol=1e-5), (who, p)


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_fit_beats_nkp_on_the_calibration_text_and_reports_every_module(assets, family):
    student, teacher, calib = _student(assets, family)
    report = fit_to_activations(student, teacher, calib)
    mods = kronecker_modules(student)
    assert set(report["modules"]) == set(mods) and len(mods) == {"bert": 12, "gpt2": 8, "llama": 14}[family]  # 2 layers x 6 | 4 | 7
    for m in report["modules"].values():
        assert m["calibration"]["activation"] <= m["calibration"]["nkp"] + 1e-9
        assert set(m["output"]) == set(m["weight"]) == set(m["in_model"]) == {"nkp", "activation"}
    assert set(report["families"]) == {"attention", "ffn_in", "ffn_out"}
    assert report["mean_in_model"]["activation"] < report["mean_in_model"]["nkp"]
    emb = report["embedding"]
    assert emb["activation"]["weighted"] <= emb["nkp"]["weighted"] + 1e-9
    json.dumps(report)  # summary.json material


def test_gpt2_conv1d_orientation(assets):
    """c_fc holds an exact Kronecker product, stored (in, out) as Conv1D does: the fit must find it exactly."""
    net, tok = checkpoints.load(str(assets["gpt2"]))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 16, 4, generator=g), torch.randn(1, 8, 8, generator=g)  # W (128 out, 32 in)
    for block in net.transformer.h:
        with torch.no_grad():
            block.mlp.c_fc.weight.copy_(kron_sum(a, b).T)  # Conv1D: (in, out)
    teacher = teacher_copy(net)
    kroneckerize(net, {"ffn_in": {"a_shape": [16, 4], "rank": 2}}, init="nkp")
    with torch.no_grad():  # start far from the answer, so only a correctly oriented fit gets there
        for m in kronecker_modules(net).values():
            m.A.normal_(generator=g)
            m.B.normal_(generator=g)
    from kronbench.data.calibration import load_calibration

    calib = load_calibration(assets["corpus"], tok, {"sentences": 48, "heldout": 16})
    report = fit_to_activations(net, teacher, calib, ridge=0.0, iters=200)
    for p, m in report["modules"].items():
        assert m["calibration"]["activation"] < 1e-3, p
        assert torch.allclose(net.get_submodule(p).to_dense(), dense_weight(teacher.get_submodule(p)), atol=1e-3)


def test_fit_is_deterministic(assets):
    one, teacher, calib = _student(assets, "gpt2")
    two = copy.deepcopy(one)
    r1 = fit_to_activations(one, teacher, calib)
    r2 = fit_to_activations(two, teacher, calib)
    assert r1 == r2
    for (k, v), (_, w) in zip(one.state_dict().items(), two.state_dict().items()):
        assert torch.equal(v, w), k


def test_calibration_errors_name_the_key(assets, tmp_path):
    from kronbench.data.calibration import load_calibration

    _, tok = checkpoints.load(str(assets["bert"]))
    with pytest.raises(KronbenchError, match=r"calibration\.sentences: 1000 sentences asked.*only"):
        load_calibration(assets["corpus"], tok, {"sentences": 1000})
    with pytest.raises(KronbenchError, match=r"calibration\.heldout"):
        load_calibration(assets["corpus"], tok, {"sentences": 8, "heldout": 1000})
    with pytest.raises(KronbenchError, match=r"calibration\.corpus: .* is not a directory"):
        load_calibration(tmp_path / "missing", tok)
    with pytest.raises(KronbenchError, match=r"calibration\.corpus: --init activation"):
        load_calibration(None, tok)
    with pytest.raises(KronbenchError, match=r"calibration: unknown key\(s\) \['sentence'\]"):
        load_calibration(assets["corpus"], tok, {"sentence": 3})


def test_compress_cli_writes_the_error_report(assets, tmp_path):
    from kronbench.distill.stages import compress

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    out = compress(str(assets["bert"]), str(spec), tmp_path / "run", init="activation", data=assets["corpus"],
                   calibration={"sentences": 32, "heldout": 8, "corpus": "ignored-here"})
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["init"] == "activation" == out["init"]
    assert set(summary["errors"]["mean_output"]) == {"nkp", "activation"}
    assert checkpoints.run_info(str(tmp_path / "run" / "model"))["lineage"][-1]["init"] == "activation"
    nkp = compress(str(assets["bert"]), str(spec), tmp_path / "nkp", init="nkp", data=assets["corpus"],
                   calibration={"sentences": 32, "heldout": 8})
    assert set(nkp["errors"]["mean_output"]) == {"nkp"}
    assert nkp["errors"]["embedding"]["nkp"] == summary["errors"]["embedding"]["nkp"]
    assert nkp["errors"]["mean_output"]["nkp"] == pytest.approx(summary["errors"]["mean_output"]["nkp"])
    with pytest.raises(KronbenchError, match="calibration.corpus"):
        compress(str(assets["bert"]), str(spec), tmp_path / "none", init="activation")


def test_rank_auto_spends_the_cf_budget_and_takes_the_lowest_error(assets):
    from kronbench.models.calibrate import candidates, choose_shapes
    from kronbench.models.presets import choose_a_shape, get_spec

    m1, n1 = choose_a_shape(64, 32, 4)
    budget = m1 * n1 + (64 // m1) * (32 // n1)
    cands = candidates(64, 32, 4)
    assert any(r == 1 for _, r in cands) and any(r > 1 for _, r in cands)
    for (a, b), r in cands:
        assert 0.85 * budget <= r * (a * b + (64 // a) * (32 // b)) <= budget
    student, teacher, calib = _student(assets, "bert", spec={"attention": {"a_shape": [8, 4]}})
    spec, report = choose_shapes(teacher, "cf=4,rank=auto", calib, "activation", iters=3)
    for fam in ("attention", "ffn_in", "ffn_out"):
        best = min(report[fam]["candidates"], key=lambda c: (round(c["error"], 6), c["rank"]))
        assert report[fam]["chosen"] == best
        assert spec.families[fam].rank == best["rank"] and list(spec.families[fam].a_shape) == best["a_shape"]
    assert spec.families["embedding"].rank == 1  # the embedding keeps its cf shape
    with pytest.raises(KronbenchError, match="rank auto is chosen from calibration text"):
        kroneckerize(copy.deepcopy(teacher), get_spec("cf=4,rank=auto"))
    with pytest.raises(KronbenchError, match="cf=<x>,rank=auto"):
        get_spec("cf=4,rank=7")
