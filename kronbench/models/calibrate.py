"""Data-aware initialisation: refit an NKP student's Kronecker factors to the outputs each layer produces on
calibration text (`compress --init activation`).

Sequential, as GPTQ and SVD-LLM do for quantisation and low rank: modules are fitted in the order the forward
pass reaches them, each on the inputs the partly fitted student itself produces, so an upstream error is seen
(and partly repaired) downstream instead of compounding unseen. A module's target is the dense teacher's output
on the teacher's own inputs for the same tokens, W·x_teacher (`target="teacher"`), or W·x_student (`"own"`, the
GPTQ form). Modules that read one tensor (Q, K and V) are fitted from one pass. Everything a fit needs is in
second moments (kronbench.kron.fit), so no activations are kept between batches.

The word embedding's "input" is a one-hot token, so its output error on the text is the row error weighted by
token frequency: weighted NKP (kronbench.kron.nkp, `row_weights`) is its exact optimum.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from kronbench.errors import KronbenchError
from kronbench.kron import KroneckerConcat, KroneckerEmbedding, KroneckerLinear
from kronbench.kron.fit import Moments, fit_kronecker, output_error, weight_error
from kronbench.kron.linear import dense_weight
from kronbench.kron.nkp import kron_sum, nearest_kronecker
from kronbench.models.families import FAMILIES
from kronbench.models.presets import FamilySpec, Spec, choose_a_shape, get_spec
from kronbench.models.registry import family_of

TARGETS = ("teacher", "own")


@dataclass
class Calibration:
    """Tokenised calibration text: `fit` batches the factors are fitted on, `heldout` batches errors are
    reported on (dicts of model inputs, (B, T) tensors with attention_mask), and token counts for the
    embedding's row weights."""
    fit: list[dict]
    heldout: list[dict]
    token_counts: Counter


class _Stop(Exception):
    """Raised by a hook once every module of interest has been seen: the rest of the forward is not needed."""


def kronecker_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Path -> KroneckerLinear/KroneckerConcat of the model (a KroneckerConcat's parts are not listed)."""
    out, inside = {}, set()
    for path, mod in model.named_modules():
        if isinstance(mod, KroneckerConcat):
            out[path] = mod
            inside |= {f"{path}.parts.{i}" for i in range(len(mod.parts))}
        elif isinstance(mod, KroneckerLinear) and path not in inside:
            out[path] = mod
    return out


@contextmanager
def untimed_kernels(model: nn.Module):
    """Each KroneckerLinear on its FLOP-cheaper kernel while calibrating: no timing runs, and the same kernel (so
    the same rounding, the same fit) whatever the kernel cache holds. Restored afterwards."""
    from kronbench.kron import orders
    from kronbench.kron.linear import KERNELS

    saved = []
    for mod in model.modules():
        if isinstance(mod, KroneckerLinear):
            (r, m1, n1), (_, m2, n2) = mod.A.shape, mod.B.shape
            saved.append((mod, mod.order))
            mod.order = orders.flop_default(m1, n1, m2, n2, r, KERNELS)
    try:
        yield model
    finally:
        for mod, order in saved:
            mod.order = order


def _flat(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, n) -> (tokens, n), padding dropped."""
    if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
        return x[mask.bool()]
    return x.reshape(-1, x.shape[-1])


def _hooked(root: nn.Module, paths: list[str], mask, run, names: list[str] | None = None,
            stop: bool = True) -> dict[str, torch.Tensor]:
    """Call run() with a pre-hook on each of root's submodules `paths`: {name: its input (tokens, n)}, padding
    dropped; the call stops (`_Stop`) once all are seen."""
    names = names or paths
    got, handles = {}, []

    def hook(name):
        def fn(_mod, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            got[name] = _flat(x.detach(), mask)
            if stop and len(got) == len(names):
                raise _Stop
        return fn

    for p, name in zip(paths, names):
        handles.append(root.get_submodule(p).register_forward_pre_hook(hook(name), with_kwargs=True))
    try:
        with torch.no_grad():
            run()
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in got]
    if missing:
        raise KronbenchError(f"calibration: the forward pass never reached {missing}")
    return got


def _inputs(model: nn.Module, paths: list[str], batch: dict, stop: bool = True) -> dict[str, torch.Tensor]:
    """The input of each module in `paths` for one batch, padding dropped; the forward stops once all are seen.
    The heads (a tied LM head's vocabulary logits) are never needed: base_model only."""
    return _hooked(model, paths, batch.get("attention_mask"), lambda: model.base_model(**batch), stop=stop)


def forward_groups(model: nn.Module, paths: list[str], batch: dict) -> list[list[str]]:
    """`paths` in forward order, grouped by the tensor they read (Q, K, V of one block share one). Each input is
    held until the pass ends: a freed tensor's address is reused, and two layers would then look like one."""
    order, handles = [], []
    batch = {k: v[:2] for k, v in batch.items()}  # two rows tell the order and the sharing

    def hook(path):
        def fn(_mod, args, kwargs):
            order.append((path, args[0] if args else next(iter(kwargs.values()))))
        return fn

    for p in paths:
        handles.append(model.get_submodule(p).register_forward_pre_hook(hook(p), with_kwargs=True))
    try:
        with torch.no_grad():
            model.base_model(**batch)
    finally:
        for h in handles:
            h.remove()
    groups, last = [], None
    for path, x in order:
        if x is last and path not in groups[-1]:
            groups[-1].append(path)
        elif not any(path in g for g in groups):
            groups.append([path])
        last = x
    return groups


def _parts(module: nn.Module, weight: torch.Tensor) -> list[tuple[KroneckerLinear, torch.Tensor]]:
    """(Kronecker part, its rows of the dense weight): one for a KroneckerLinear, three for GPT-2's c_attn."""
    if isinstance(module, KroneckerConcat):
        return list(zip(module.parts, weight.split([part.out_features for part in module.parts], 0)))
    return [(module, weight)]


def _moments(x_in: torch.Tensor, x_target: torch.Tensor, w: torch.Tensor) -> Moments:
    return Moments.of(x_in.float(), x_target.float() @ w.float().T)


def fit_to_activations(student: nn.Module, teacher: nn.Module, calib: Calibration, target: str = "teacher",
                       ridge: float = 1e-2, iters: int = 30, sequential: bool = True) -> dict:
    """Refit every Kronecker module of `student` (NKP-initialised from `teacher`, same module paths) in place,
    group by group in forward order; the word embedding first, by frequency-weighted NKP. `sequential=False` fits
    every module on the teacher's inputs instead (each layer alone). Returns the `errors` report (`error_report`,
    plus each module's `calibration` error: the fit's own objective before and after)."""
    with untimed_kernels(student):
        return _fit_to_activations(student, teacher, calib, target, ridge, iters, sequential)


def _group_moments(student, teacher, mods, group, calib, target, sequential, replay=None) -> dict[str, list[Moments]]:
    """Per module of `group`, per output part: moments of (the student's inputs, the target outputs) over the
    calibration batches. Inside a transformer block the inputs come from replaying that block alone on the cached
    hidden states (`_Replay`); elsewhere from a forward pass that stops at the group (`_inputs`)."""
    moments: dict[str, list[Moments]] = {}
    weights = {p: dense_weight(teacher.get_submodule(p)).detach() for p in group}
    for i, batch in enumerate(calib.fit):
        want_t = target == "teacher" or not sequential
        if replay is not None:
            xt = replay.inputs("teacher", i, group) if want_t else None
            xs = replay.inputs("student", i, group) if sequential else xt
        else:
            xt = _inputs(teacher, group, batch) if want_t else None
            xs = _inputs(student, group, batch) if sequential else xt
        xt = xs if xt is None else xt
        for p in group:
            ms = [_moments(xs[p], xt[p], w_part) for _, w_part in _parts(mods[p], weights[p])]
            moments[p] = ms if p not in moments else [a + b for a, b in zip(moments[p], ms)]
    return moments


class _Replay:
    """The hidden states entering one transformer block, per calibration batch, for the student and the teacher,
    and the other arguments the model passes its blocks (mask, positions): each group's inputs then cost a pass
    through its own block, not a forward from the embedding (O(layers) passes, not O(layers²)). `advance(k)` runs
    blocks up to k on the current (fitted) student, so every block still sees the student's own inputs. The
    teacher never changes: its inputs to all `paths` of a block come from one pass, kept while that block lasts."""

    def __init__(self, student: nn.Module, teacher: nn.Module, calib: Calibration, paths: list[str]):
        fam = FAMILIES[family_of(student.config)]
        self.prefix = _prefix(student) + fam.layers + "."
        self.paths, self.teacher_inputs, self.teacher_out = paths, {}, {}
        self.models = {"student": student, "teacher": teacher}
        self.masks = [b.get("attention_mask") for b in calib.fit]
        self.block = 0
        self.state = {k: [_block_call(m, fam.layers, b) for b in calib.fit] for k, m in self.models.items()}

    def block_of(self, path: str) -> int | None:
        return _block_index(self.prefix, path)

    def _block(self, who: str, k: int) -> nn.Module:
        return self.models[who].get_submodule(self.prefix + str(k))

    def advance(self, k: int) -> None:
        """Run every batch through blocks self.block .. k-1, so the state is what enters block k."""
        for b in range(self.block, k):
            for who in self.models:
                block = self._block(who, b)
                kept = self.teacher_out.get(b) if who == "teacher" else None  # the teacher's pass in `inputs`
                with torch.no_grad():
                    for i, call in enumerate(self.state[who]):
                        out = kept[i] if kept else block(*call[0], **call[1])
                        call[0] = (out[0] if isinstance(out, tuple) else out,) + tuple(call[0][1:])
        self.block = max(self.block, k)

    def inputs(self, who: str, i: int, paths: list[str]) -> dict[str, torch.Tensor]:
        """The inputs of `paths` (all in block self.block) for batch i, from a pass through that block alone."""
        if who == "teacher":
            if self.block not in self.teacher_inputs:  # whole block: its output then serves `advance` too
                here = [p for p in self.paths if self.block_of(p) == self.block]
                outs = [{} for _ in self.masks]
                self.teacher_inputs = {self.block: [self._pass(who, j, here, keep=outs[j])
                                                    for j in range(len(self.masks))]}
                self.teacher_out = {self.block: [o["out"] for o in outs]}
            return {p: self.teacher_inputs[self.block][i][p] for p in paths}
        return self._pass(who, i, paths)

    def _pass(self, who: str, i: int, paths: list[str], keep: dict | None = None) -> dict[str, torch.Tensor]:
        """Hooked pass through the current block; with `keep`, it runs to the end and keeps the block's output."""
        block = self._block(who, self.block)
        sub = self.prefix + str(self.block) + "."
        args, kwargs = self.state[who][i]

        def run():
            out = block(*args, **kwargs)
            if keep is not None:
                keep["out"] = out

        return _hooked(block, [p[len(sub):] for p in paths], self.masks[i], run, names=paths, stop=keep is None)


def _block_index(prefix: str, path: str) -> int | None:
    """k for a module path `<prefix>k.…` (prefix: the blocks' ModuleList path and a dot), None outside the blocks."""
    m = re.match(re.escape(prefix) + r"(\d+)\.", path)
    return int(m.group(1)) if m else None


def _prefix(model: nn.Module) -> str:
    """The path of the base model inside a model with a head ("" for a bare base model)."""
    return model.base_model_prefix + "." if hasattr(model, model.base_model_prefix) else ""


def _block_call(model: nn.Module, layers: str, batch: dict) -> list:
    """[args, kwargs] the model passes its first block for `batch` (the forward stops there); no KV cache."""
    got = {}

    def fn(_mod, args, kwargs):
        got["call"] = [tuple(a.detach() if torch.is_tensor(a) else a for a in args), dict(kwargs)]
        raise _Stop

    handle = model.base_model.get_submodule(layers)[0].register_forward_pre_hook(fn, with_kwargs=True)
    extra = {"use_cache": False} if getattr(model.config, "use_cache", None) is not None else {}
    try:
        with torch.no_grad():
            model.base_model(**batch, **extra)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "call" not in got:
        raise KronbenchError("calibration: the forward pass never reached the first transformer block")
    return got["call"]


def _fit_to_activations(student, teacher, calib, target, ridge, iters, sequential) -> dict:
    if target not in TARGETS:
        raise KronbenchError(f"calibration.target: {target!r}; use one of {', '.join(TARGETS)}")
    student.eval()
    teacher.eval()
    mods = kronecker_modules(student)
    nkp_student = copy.deepcopy(student)  # the NKP start, for the report's side-by-side errors
    nkp = _factors(mods)
    emb = _fit_embedding(student, teacher, calib.token_counts)  # first: every layer above reads its output
    calib_err, replay = {}, None
    blocks = _prefix(student) + FAMILIES[family_of(student.config)].layers + "."
    for group in forward_groups(student, list(mods), calib.fit[0]):
        block = {_block_index(blocks, p) for p in group}
        if len(block) == 1 and None not in block and (replay is None or min(block) >= replay.block):
            # made after the embedding's fit (the blocks read its output), and again after any full-forward group
            replay = replay or _Replay(student, teacher, calib, list(mods))
            replay.advance(min(block))
        else:  # outside the blocks (or out of order): a full forward, and the cached states are stale after it
            replay = None
        moments = _group_moments(student, teacher, mods, group, calib, target, sequential, replay)
        for p in group:
            w = dense_weight(teacher.get_submodule(p)).detach()
            errs = []
            for (part, w_part), mo, (a0, b0) in zip(_parts(mods[p], w), moments[p], nkp[p]):
                a, b, _info = fit_kronecker(w_part, mo, part.A, part.B, ridge=ridge, iters=iters)
                before = output_error(kron_sum(a0.double(), b0.double()), mo)
                after = output_error(kron_sum(a.double(), b.double()), mo)
                if after > before:  # cannot happen with exact solves (kronbench.kron.fit); kept as a guard
                    a, b, after = a0, b0, before
                with torch.no_grad():
                    part.A.copy_(a)
                    part.B.copy_(b)
                errs.append((before, after, mo.yy))
            calib_err[p] = {"nkp": _pooled([(e[0], e[2]) for e in errs]),
                            "activation": _pooled([(e[1], e[2]) for e in errs])}
    report = error_report({"nkp": nkp_student, "activation": student}, teacher, calib, calib_err, emb)
    return {"target": target, "sequential": sequential, "ridge": ridge, **report}


def _pooled(errs: list[tuple[float, float]]) -> float:
    """Relative error of several outputs side by side (c_attn's Q, K, V): √(Σ e²·‖y‖²) / √(Σ ‖y‖²)."""
    return (sum(e * e * yy for e, yy in errs) / max(sum(yy for _, yy in errs), 1e-300)) ** 0.5


def row_weights(counts: Counter, vocab: int) -> torch.Tensor:
    """Add-one smoothed unigram frequencies (vocab,): frequent words weigh more, unseen ones still count."""
    w = torch.ones(vocab, dtype=torch.float64)
    for tok, c in counts.items():
        if 0 <= tok < vocab:
            w[tok] += c
    return w / w.sum()


def _fit_embedding(student: nn.Module, teacher: nn.Module, counts: Counter, refit: bool = True) -> dict | None:
    """Refit the Kronecker word embedding by frequency-weighted NKP, in place (a tied head shares its A and B).
    Returns its relative error against the teacher's table, frequency-weighted and unweighted, for NKP and the
    fit (only NKP's with refit=False); None if the embedding stays dense."""
    path = FAMILIES[family_of(student.config)].embedding
    emb = student.base_model.get_submodule(path)
    if not isinstance(emb, KroneckerEmbedding):
        return None
    x = teacher.base_model.get_submodule(path).weight.detach().double()  # (v, d)
    w = row_weights(counts, emb.num_embeddings)

    def errs(x_hat):
        d2, n2 = ((x - x_hat) ** 2).sum(1), (x * x).sum(1)  # (v,)
        return {"weighted": float((w * d2).sum() / (w * n2).sum()) ** 0.5,
                "unweighted": float(d2.sum() / n2.sum()) ** 0.5}

    out = {"path": path, "nkp": errs(emb.to_dense().detach().double())}
    if refit:
        a, b = nearest_kronecker(x, tuple(emb.A.shape[1:]), emb.rank, row_weights=w)
        with torch.no_grad():
            emb.A.copy_(a)
            emb.B.copy_(b)
        out["activation"] = errs(kron_sum(a, b))
    return out


def _factors(mods: dict) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    return {p: [(part.A.detach().double().clone(), part.B.detach().double().clone())
                for part in (m.parts if isinstance(m, KroneckerConcat) else [m])] for p, m in mods.items()}


def _family_names(model: nn.Module, paths) -> dict[str, str]:
    fam = FAMILIES[family_of(model.config)]
    subs = {"attention": fam.attention, "ffn_in": fam.ffn_in, "ffn_out": fam.ffn_out}
    return {p: next((f for f, ss in subs.items() if any(p.endswith("." + s) for s in ss)), "other") for p in paths}


def _trace(model: nn.Module, paths: list[str], batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One full forward: the input of each module in `paths` and the last hidden state (tokens, d)."""
    mask = batch["attention_mask"]
    out = {}

    def run():
        out["h"] = model.base_model(**batch).last_hidden_state

    xs = _hooked(model, paths, mask, run, stop=False)
    return xs, out["h"][mask.bool()]


def _sq(x: torch.Tensor) -> float:
    """Σ x² summed in float64 (the products stay in x's dtype: a report, not a fit)."""
    return float(x.square().sum(dtype=torch.float64))


def error_report(students: dict[str, nn.Module], teacher: nn.Module, calib: Calibration,
                 calib_err: dict | None = None, embedding: dict | None = None) -> dict:
    """Held-out errors of each student (by init name, "nkp" first) against the dense teacher, per module:
      weight       ‖W − Ŵ‖ / ‖W‖
      output       ‖(W − Ŵ) X‖ / ‖W X‖ on the teacher's inputs X: the layer alone (the issue's table)
      in_model     ‖W X − Ŵ X_s‖ / ‖W X‖ on the student's own inputs X_s: the layer where it sits
    then means per family and over all modules, and `final_hidden`, the last hidden state's relative error.
    `calib_err` (the fit's calibration-set error) and `embedding` are added as given. One forward pass per model
    and held-out batch; residuals are computed directly, never through n × n moments."""
    names = list(students)
    mods = {k: kronecker_modules(s) for k, s in students.items()}
    paths = list(mods[names[0]])
    fams = _family_names(teacher, paths)
    facs = {k: _factors(m) for k, m in mods.items()}
    weights = {p: dense_weight(teacher.get_submodule(p)).detach().double() for p in paths}
    w_hats = {k: {p: torch.cat([kron_sum(a, b) for a, b in facs[k][p]], 0) for p in paths} for k in names}
    diffs = {k: {p: (weights[p] - w_hats[k][p]).float() for p in paths} for k in names}
    w32 = {p: w.float() for p, w in weights.items()}
    h32 = {k: {p: w.float() for p, w in w_hats[k].items()} for k in names}
    alone = {k: {p: 0.0 for p in paths} for k in names}
    inm = {k: {p: 0.0 for p in paths} for k in names}
    norm = {p: 0.0 for p in paths}
    fin, fin_norm, tokens = {k: 0.0 for k in names}, 0.0, 0
    for batch in calib.heldout:
        xt, ht = _trace(teacher, paths, batch)
        fin_norm += _sq(ht)
        tokens += ht.shape[0]
        yt = {p: xt[p].float() @ w32[p].T for p in paths}
        for p in paths:
            norm[p] += _sq(yt[p])
            for k in names:
                alone[k][p] += _sq(xt[p].float() @ diffs[k][p].T)
        for k, st in students.items():
            xs, hs = _trace(st, paths, batch)
            for p in paths:
                inm[k][p] += _sq(yt[p] - xs[p].float() @ h32[k][p].T)
            fin[k] += _sq(hs - ht)
    modules = {}
    for p in paths:
        w = weights[p]
        out = {"family": fams[p], "weight": {}, "output": {}, "in_model": {}}
        for k in names:
            w_hat = w_hats[k][p]
            out["weight"][k] = weight_error(w_hat, w)
            out["output"][k] = (alone[k][p] / max(norm[p], 1e-300)) ** 0.5
            out["in_model"][k] = (inm[k][p] / max(norm[p], 1e-300)) ** 0.5
        if calib_err is not None:
            out["calibration"] = calib_err[p]
        modules[p] = out
    what = ("weight", "output", "in_model") + (("calibration",) if calib_err is not None else ())
    families = {f: {x: {k: _mean(m[x][k] for m in modules.values() if m["family"] == f) for k in modules[paths[0]][x]}
                    for x in what} for f in dict.fromkeys(fams.values())}
    report = {"inits": names, "modules": modules, "families": families,
              "mean_output": {k: _mean(m["output"][k] for m in modules.values()) for k in names},
              "mean_in_model": {k: _mean(m["in_model"][k] for m in modules.values()) for k in names},
              "final_hidden": {k: (fin[k] / max(fin_norm, 1e-300)) ** 0.5 for k in names},
              "heldout_tokens": tokens,
              "calibration_tokens": sum(int(b["attention_mask"].sum()) for b in calib.fit)}
    if embedding is not None:
        report["embedding"] = embedding
    return report


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / max(len(xs), 1)


def nkp_report(student: nn.Module, teacher: nn.Module, calib: Calibration) -> dict:
    """The held-out errors of an NKP student alone (compress --init nkp with calibration text)."""
    with untimed_kernels(student):
        return error_report({"nkp": student}, teacher, calib,
                            embedding=_fit_embedding(student, teacher, calib.token_counts, refit=False))


def teacher_copy(model: nn.Module) -> nn.Module:
    """A frozen dense copy to fit against, taken before `kroneckerize` replaces the modules in place."""
    return copy.deepcopy(model).eval().requires_grad_(False)



# ------------------------------------------------------------------------------------------- rank: auto
def candidates(m: int, n: int, cf: float, max_rank: int = 8, per_rank: int = 2) -> list[tuple[tuple[int, int], int]]:
    """(a_shape, rank) pairs spending cf's rank-1 budget P = m1·n1 + m2·n2 (choose_a_shape) on r products:
    r·(m1·n1 + m2·n2) within [0.85·P, P], for r = 1..max_rank, the `per_rank` fullest (then squarest) shapes each."""
    from kronbench.kron.shapes import divisors

    m1, n1 = choose_a_shape(m, n, cf)
    budget = m1 * n1 + (m // m1) * (n // n1)
    out = []
    for r in range(1, max_rank + 1):
        shapes = []
        for a in divisors(m):
            for b in divisors(n):
                params = r * (a * b + (m // a) * (n // b))
                if 0.85 * budget <= params <= budget and r <= min(a * b, (m // a) * (n // b)):
                    skew = abs(math.log(a / b)) + abs(math.log((m // a) / (n // b)))
                    shapes.append((-params, skew, (a, b)))
        out += [(shape, r) for _, _, shape in sorted(shapes)[:per_rank]]
    return out


def choose_shapes(teacher: nn.Module, spec, calib: Calibration | None, init: str, iters: int = 10,
                  ridge: float = 1e-2) -> tuple[Spec, dict]:
    """A spec whose `rank: auto` families get the (a_shape, rank) of lowest error at cf's budget, on a first,
    middle and last layer of the teacher: held-in output error of the fit (init activation), of NKP on the same
    inputs (init nkp with text), or NKP's weight error (no text). Returns the spec and each family's candidates."""
    spec = get_spec(spec)
    auto = {f: fs for f, fs in spec.families.items() if fs.rank == "auto"}
    if not auto:
        return spec, {}
    fam = FAMILIES[family_of(teacher.config)]
    subs = {"attention": fam.attention, "ffn_in": fam.ffn_in, "ffn_out": fam.ffn_out}
    blocks = len(teacher.base_model.get_submodule(fam.layers))
    prefix = _prefix(teacher)
    chosen, report = dict(spec.families), {}
    for f, fs in auto.items():
        from kronbench.models.surgery import FUSED, layer_indices

        layers = layer_indices(fs.layers, blocks, f)
        probe = sorted({layers[0], layers[len(layers) // 2], layers[-1]})
        sub_of = {f"{prefix}{fam.layers}.{i}.{sub}": sub for i in probe for sub in subs[f]}
        paths = list(sub_of)  # a fused c_attn is fitted as its Q, K and V, as surgery splits it
        weights = {p: list(dense_weight(teacher.get_submodule(p)).detach().chunk(FUSED.get(sub_of[p], 1), 0))
                   for p in paths}
        moments = {}
        if calib is not None:
            with torch.no_grad():
                for batch in calib.fit:
                    xs = _inputs(teacher, paths, batch, stop=False)
                    for p in paths:
                        ms = [_moments(xs[p], xs[p], w) for w in weights[p]]
                        moments[p] = ms if p not in moments else [a + b for a, b in zip(moments[p], ms)]
        m, n = weights[paths[0]][0].shape
        scores = []
        for a_shape, r in candidates(m, n, fs.cf):
            err = 0.0
            for p in paths:
                for k, w in enumerate(weights[p]):
                    a, b = nearest_kronecker(w, a_shape, r)
                    if calib is None:
                        err += weight_error(kron_sum(a, b), w)
                        continue
                    if init == "activation":
                        a, b, _ = fit_kronecker(w, moments[p][k], a, b, ridge=ridge, iters=iters)
                    err += output_error(kron_sum(a.double(), b.double()), moments[p][k])
            scores.append({"a_shape": list(a_shape), "rank": r, "error": err / sum(len(weights[p]) for p in paths)})
        best = min(scores, key=lambda c: (round(c["error"], 6), c["rank"]))
        chosen[f] = FamilySpec(a_shape=tuple(best["a_shape"]), rank=best["rank"], layers=fs.layers)
        report[f] = {"chosen": best, "candidates": scores, "probe_layers": probe,
                     "criterion": "weight" if calib is None else f"calibration output ({init})"}
    return Spec(spec.name, chosen), report
