"""compress(model, spec): swap a Hugging Face BERT/GPT-2/Llama's dense layers for Kronecker ones, in place.

Students are initialised by nearest Kronecker product from the model's own weights (KroneckerBERT §3.4: "stage-1
student"). Modules the spec leaves out (position/segment embeddings, LayerNorms, pooler, task heads) stay dense and
keep their weights. The resolved spec is stored in `model.config.kronbench_spec`, so a saved checkpoint says how to
rebuild itself (`save_compressed` / `load_compressed`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from kronbench import atomic
from kronbench.errors import KronbenchError
from kronbench.kron import KroneckerConcat, KroneckerEmbedding, KroneckerLinear, TiedKroneckerHead
from kronbench.kron.linear import dense_weight
from kronbench.kron.nkp import check_a_shape
from kronbench.models.families import FAMILIES as FAMILIES_BY_TYPE
from kronbench.models.presets import FAMILIES, FamilySpec, choose_a_shape, choose_n, get_spec
from kronbench.models.registry import family_of

# Module paths inside the base model (BertModel / GPT2Model / LlamaModel), from the family records
# (kronbench.models.families).
# A fused projection (GPT-2's c_attn) holds W_Q, W_K, W_V side by side: three factor pairs, one per part.
PATHS = {name: {"layers": f.layers, "embedding": f.embedding, "attention": list(f.attention),
                "ffn_in": list(f.ffn_in), "ffn_out": list(f.ffn_out)} for name, f in FAMILIES_BY_TYPE.items()}
FUSED = {f.fused_qkv: 3 for f in FAMILIES_BY_TYPE.values() if f.fused_qkv}


def layer_indices(layers, num_layers: int, family: str) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    if layers in ("odd", "even"):
        return list(range(1 if layers == "odd" else 0, num_layers, 2))
    if isinstance(layers, str):
        raise KronbenchError(f"{family}.layers={layers!r}: use all, odd, even or a list of layer indices")
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise KronbenchError(f"{family}.layers: indices {bad} out of range; the model has layers 0..{num_layers - 1}")
    return sorted(set(layers))


def _resolve(fs: FamilySpec, family: str, sub: str, module: nn.Module, where: str) -> FamilySpec:
    """Fill a_shape/n from cf for this module's dims, and check the shape divides it."""
    if family == "embedding":
        d = module.weight.shape[1]
        n = fs.n if fs.n is not None else choose_n(d, fs.cf)
        if d % n:
            raise KronbenchError(f"{where} (embedding {tuple(module.weight.shape)}): n={n} must divide {d}")
        return FamilySpec(n=n, rank=fs.rank, layers=fs.layers)
    if fs.rank == "auto":
        raise KronbenchError(f"{where} [{family}]: rank auto is chosen from calibration text by `kronbench compress "
                             f"--data <corpus>` (kronbench.models.calibrate.choose_shapes); give an integer rank here")
    m, n = dense_weight(module).shape
    m //= FUSED.get(sub, 1)  # fused c_attn: each of Q, K, V gets the spec's shape
    a_shape = fs.a_shape
    if isinstance(a_shape, dict):  # one shape per module path (GQA's narrower K/V)
        if sub not in a_shape:
            raise KronbenchError(f"{where} [{family}]: a_shape gives shapes for {sorted(a_shape)}, not for {sub}")
        a_shape = a_shape[sub]
    a_shape = a_shape if a_shape is not None else choose_a_shape(m, n, fs.cf)
    m1, n1, m2, n2 = check_a_shape((m, n), a_shape, f"{where} [{family}]")
    if not 1 <= fs.rank <= min(m1 * n1, m2 * n2):
        raise KronbenchError(f"{where} [{family}] ({m} × {n}), a_shape ({m1}, {n1}): rank {fs.rank} exceeds the "
                             f"rearranged matrix's rank bound {min(m1 * n1, m2 * n2)}")
    return FamilySpec(a_shape=(m1, n1), rank=fs.rank, layers=fs.layers)


def _set(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def kroneckerize(model: nn.Module, spec, init: str = "nkp") -> dict:
    """Replace the spec's modules of a BERT or GPT-2 model in place; returns the resolved spec as a dict.

    init="nkp" factorises each dense weight (the paper's initialisation); init="random" only builds the shapes
    (for counting, or before loading a compressed checkpoint).
    """
    spec = get_spec(spec)
    family = family_of(model.config)
    base = model.base_model
    paths = PATHS[family]
    num_layers = len(base.get_submodule(paths["layers"]))
    resolved: dict[str, dict] = {}
    for fam in FAMILIES:
        fs = spec.families.get(fam)
        if fs is None:
            continue
        if fam == "embedding":
            path = paths["embedding"]
            old = base.get_submodule(path)
            if isinstance(old, KroneckerEmbedding):
                raise KronbenchError(f"{path} is already Kronecker-factored; compress a dense model")
            r = _resolve(fs, fam, path, old, path)
            new = (KroneckerEmbedding.from_embedding(old, r.n, r.rank) if init == "nkp" else
                   KroneckerEmbedding(*old.weight.shape, r.n, r.rank, old.padding_idx,
                                      device=old.weight.device, dtype=old.weight.dtype))
            _replace_embedding(model, base, path, old, new)
            resolved[fam] = {"n": r.n, "rank": r.rank}
            continue
        shapes: dict[str, set] = {}  # module path in the block -> the shapes it resolved to
        for i in layer_indices(fs.layers, num_layers, fam):
            for sub in paths[fam]:
                path = f"{paths['layers']}.{i}.{sub}"
                old = base.get_submodule(path)
                if isinstance(old, (KroneckerLinear, KroneckerConcat)):
                    raise KronbenchError(f"{path} is already Kronecker-factored; compress a dense model")
                r = _resolve(fs, fam, sub, old, path)
                _set(base, path, _kron_module(old, sub, r, init))
                shapes.setdefault(sub, set()).add(r.a_shape)
        if not shapes:
            raise KronbenchError(f"spec family {fam!r} matches no module (layers={fs.layers!r}, model has "
                                 f"{num_layers} layers)")
        uneven = {sub: s for sub, s in shapes.items() if len(s) > 1}
        if uneven:  # one shape per module path keeps the stored spec exact; layers of unequal widths would break it
            raise KronbenchError(f"{fam}: {sorted(uneven)} resolved to different shapes across layers "
                                 f"{sorted(set().union(*uneven.values()))}; give a_shape")
        per_module = {sub: list(s.pop()) for sub, s in shapes.items()}
        one = {tuple(v) for v in per_module.values()}
        resolved[fam] = {"a_shape": per_module[paths[fam][0]] if len(one) == 1 else per_module, "rank": fs.rank,
                         "layers": fs.layers if isinstance(fs.layers, str) else list(fs.layers)}
    if not resolved:
        raise KronbenchError(f"spec {spec.name!r} names no module family; give at least one of {FAMILIES}")
    # The concrete spec (cf choices replaced by shapes) rebuilds exactly this model: stored for load_compressed.
    model.config.kronbench_spec = {"name": spec.name, **resolved}
    return model.config.kronbench_spec


def _kron_module(old: nn.Module, sub: str, r: FamilySpec, init: str) -> nn.Module:
    if sub in FUSED:
        splits = FUSED[sub]
        if init == "nkp":
            return KroneckerConcat.from_linear(old, r.a_shape, r.rank, splits)
        m, n = dense_weight(old).shape
        w = dense_weight(old)
        return KroneckerConcat([KroneckerLinear(n, m // splits, r.a_shape, r.rank, old.bias is not None,
                                                device=w.device, dtype=w.dtype) for _ in range(splits)])
    if init == "nkp":
        return KroneckerLinear.from_linear(old, r.a_shape, r.rank)
    w = dense_weight(old)
    return KroneckerLinear(w.shape[1], w.shape[0], r.a_shape, r.rank, old.bias is not None,
                           device=w.device, dtype=w.dtype)


def _replace_embedding(model, base, path, old: nn.Embedding, new: KroneckerEmbedding) -> None:
    """Swap the word embedding; an output projection tied to it (GPT-2 lm_head, BERT MLM decoder) follows it."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = head is not None and getattr(head, "weight", None) is old.weight
    _set(base, path, new)
    if tied:
        model.set_output_embeddings(TiedKroneckerHead(new, getattr(head, "bias", None)))


# --------------------------------------------------------------------------------------------- save / load
WEIGHTS = "model.safetensors"


def save_compressed(model: nn.Module, out_dir: str | os.PathLike, tokenizer=None) -> Path:
    """config.json (with kronbench_spec) + model.safetensors (+ tokenizer), written to a temp dir and renamed."""
    from safetensors.torch import save_model

    with atomic.directory(out_dir) as tmp:
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(tmp)
        save_model(model, str(tmp / WEIGHTS))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def load_compressed(path: str | os.PathLike, dtype: torch.dtype | None = None) -> nn.Module:
    """Rebuild the architecture from config.json, apply its kronbench_spec, load the weights."""
    import transformers
    from safetensors.torch import load_model

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise KronbenchError(f"{path}: no config.json; is this a kronbench checkpoint directory?")
    config = transformers.AutoConfig.from_pretrained(path)
    spec = getattr(config, "kronbench_spec", None)
    arch = (config.architectures or [None])[0]
    if spec is None or not hasattr(transformers, str(arch)):
        raise KronbenchError(f"{cfg_file}: needs 'kronbench_spec' and a transformers class in 'architectures' "
                             f"(found {arch!r}); dense checkpoints load with from_pretrained")
    config._attn_implementation = "eager"
    model = getattr(transformers, arch)(config)
    kroneckerize(model, spec, init="random")
    load_model(model, str(path / WEIGHTS), strict=True)
    if dtype is not None:
        model.to(dtype)
    return model.eval()


def spec_of(model: nn.Module) -> dict | None:
    spec = getattr(model.config, "kronbench_spec", None)
    return json.loads(json.dumps(spec)) if spec is not None else None
