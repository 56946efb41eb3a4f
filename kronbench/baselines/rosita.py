"""ROSITA-style structured pruning (docs/sources.md §3): heads, FFN neurons and layers are removed, not masked.

ROSITA (Liu, Lin, Yuan, AAAI 2021; llyx97/Rosita README) shrinks BERT-base to the bottom 8 layers, 2 heads per layer,
FFN 512 and a rank-128 SVD word embedding (14.47M params with pooler, "7.5× smaller"). Heads and FFN neurons are
chosen by first-order Taylor importance and widths shrink linearly over pruning steps ("KD Setting 4"):

    for step in range(n_steps + 1):                       # the training loop (kronbench.distill) owns this
        now = {k: width_schedule(start[k], end[k], step, n_steps) for k in ("heads", "ffn", "emb_rank")}
        prune_step(model, taylor_importance(model, batches, loss_fn), now)
        optimizer = make_optimizer(model)                 # pruning makes new Parameter objects

Every function edits the model in place. Heads and neurons are indices into the *current* model. The result's
shape is written to `model.config.kronbench_pruned` ({"heads": [per layer], "ffn": [per layer], "emb_rank"}), which
`restructure` reads to rebuild a freshly built model's shapes before loading a pruned checkpoint.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kronbench.errors import KronbenchError
# re-exported: the structural surgery lives in kronbench.models.pruning; ROSITA's method (importance, schedule,
# targets) is this module's
from kronbench.models.pruning import (FactorizedEmbedding, TiedFactorizedHead, attn_out, drop_layers,  # noqa: F401
                                      factorize_embedding, ffn_out, in_major, layers_of, n_ffn, n_heads, prune_ffn,
                                      prune_heads, record_structure, restructure, structure)
from kronbench.models.registry import family_of

# ROSITA's final BERT-base architecture as (kept, of): README / KD/pruning_one_step.py (docs/sources.md §3.1).
ROSITA_BERT_BASE = {"layers": (8, 12), "heads": (2, 12), "ffn": (512, 3072), "emb_rank": (128, 768)}


# --------------------------------------------------------------------------------------------- importance
def taylor_importance(model: nn.Module, batches, loss_fn) -> dict:
    """First-order Taylor scores {"heads": {layer: (H_l,)}, "ffn": {layer: (I_l,)}}, higher = more important.

    score(unit) = Σ_batches |Σ_{w ∈ unit's in-features of the output projection} w · ∂L/∂w|. For y = x·W this
    inner sum equals Σ_tokens x_unit · ∂L/∂x_unit, the first-order change of L when that head's (or neuron's)
    output is zeroed, so weight gradients alone give the output-Taylor criterion ROSITA uses (`--compute_taylor`).
    The absolute value is taken per batch, then summed, so opposite-sign batches do not cancel.

    loss_fn(model, batch) -> scalar loss. Runs in eval mode (no dropout) and leaves every .grad untouched.
    """
    family, blocks = layers_of(model)
    mods = [(kind, layer, (attn_out if kind == "heads" else ffn_out)(b, family))
            for kind in ("heads", "ffn") for layer, b in enumerate(blocks)]
    weights = [m.weight for _, _, m in mods]
    flags, was_training = [w.requires_grad for w in weights], model.training
    scores = {"heads": {}, "ffn": {}}
    model.eval()
    try:
        for w in weights:
            w.requires_grad_(True)
        for batch in batches:
            grads = torch.autograd.grad(loss_fn(model, batch), weights, allow_unused=True)
            for (kind, layer, m), w, g in zip(mods, weights, grads):
                wg = in_major(m, w.detach() * (g if g is not None else torch.zeros_like(w)))  # (in, d)
                units = n_heads(blocks[layer], family)[0] if kind == "heads" else wg.shape[0]
                s = wg.float().reshape(units, -1).sum(1).abs()  # (units,): heads group dh rows each
                scores[kind][layer] = scores[kind].get(layer, 0) + s
    finally:
        for w, f in zip(weights, flags):
            w.requires_grad_(f)
        model.train(was_training)
    if not scores["heads"]:
        raise KronbenchError("taylor_importance: `batches` was empty; give at least one batch")
    return scores


def prune_step(model: nn.Module, importance: dict, targets_now: dict) -> dict:
    """Prune each layer to targets_now["heads"] heads and targets_now["ffn"] FFN neurons, keeping the highest
    `importance` (from taylor_importance on this model), and the word embedding to targets_now["emb_rank"].

    Keys left out are not pruned; a layer already at or below its target is left alone. Returns what was kept,
    {"heads": {layer: [...]}, "ffn": {layer: [...]}}, as indices into the model before this step.
    """
    family, blocks = layers_of(model)
    kept = {"heads": {}, "ffn": {}}
    for kind, prune in (("heads", prune_heads), ("ffn", prune_ffn)):
        target = targets_now.get(kind)
        if target is None:
            continue
        if target < 1:
            raise KronbenchError(f"prune_step: targets_now[{kind!r}]={target}; keep at least 1 per layer (remove "
                                 f"whole layers with drop_layers)")
        for layer, block in enumerate(blocks):
            n = n_heads(block, family)[0] if kind == "heads" else n_ffn(block, family)
            if target >= n:
                continue
            score = importance.get(kind, {}).get(layer)
            if score is None or len(score) != n:
                raise KronbenchError(f"prune_step: importance[{kind!r}][{layer}] has "
                                     f"{None if score is None else len(score)} scores for {n} {kind}; recompute "
                                     f"taylor_importance on the current model before each step")
            kept[kind][layer] = sorted(torch.topk(score, target).indices.tolist())
        if kept[kind]:
            prune(model, kept[kind])
    if targets_now.get("emb_rank") is not None:
        emb = model.get_input_embeddings()
        current = emb.rank if isinstance(emb, FactorizedEmbedding) else min(emb.weight.shape)
        if targets_now["emb_rank"] < current:
            factorize_embedding(model, targets_now["emb_rank"])
    return kept


# --------------------------------------------------------------------------------------------- targets
def _round(x: float) -> int:
    return max(1, math.floor(x + 0.5))  # halves round up (Python's round() would round 2.5 to 2); never 0


def _ffn_size(config) -> int:
    if getattr(config, "model_type", None) == "gpt2":
        return config.n_inner or 4 * config.hidden_size  # GPT2Config: n_inner=None means 4·d
    return config.intermediate_size


def rosita_targets(config) -> dict:
    """ROSITA's final architecture for a *teacher* config: {"layers", "heads", "ffn", "emb_rank"}.

    BERT-base (12 layers, 12 heads, FFN 3072, d 768) → 8, 2, 512, 128 (docs/sources.md §3.1). Other teachers keep the
    same fractions, round(n · kept/of) with halves rounding up and at least 1: MiniLM-L6 (6, 12, 1536, 384) → 4, 2,
    256, 64. Depth keeps the bottom layers: drop_layers(model, range(targets["layers"])).
    """
    have = {"layers": config.num_hidden_layers, "heads": config.num_attention_heads, "ffn": _ffn_size(config),
            "emb_rank": config.hidden_size}
    return {k: _round(have[k] * kept / of) for k, (kept, of) in ROSITA_BERT_BASE.items()}


def width_schedule(start: int, end: int, step: int, n_steps: int) -> int:
    """Units kept after pruning step `step` of `n_steps`: linear from `start` (step 0) to `end` (step ≥ n_steps).

    ROSITA's iterative width pruning (docs/sources.md §3.2, step 4). Rounded to nearest, halves up.
    """
    if n_steps < 1:
        raise KronbenchError(f"width_schedule: n_steps={n_steps}; use at least 1 pruning step")
    t = min(max(step, 0), n_steps) / n_steps
    return math.floor(start + (end - start) * t + 0.5)


def count_target_params(config, targets: dict, pooler: bool = True) -> int:
    """Parameters of the teacher `config`'s architecture pruned to `targets` (uniform per layer), analytically.

    Counts BertModel (embeddings, encoder, pooler unless pooler=False) or GPT2LMHeadModel with its LM head tied
    (= GPT2Model), like kronbench.models.counting.count_params on build_base(config); task heads are not counted.
    BERT-base at ROSITA's targets: 14,473,216 (docs/sources.md §3.1's computed 14.47M).
    """
    missing = {"layers", "heads", "ffn"} - set(targets)
    if missing:
        raise KronbenchError(f"count_target_params: targets lack {sorted(missing)}; use rosita_targets(config)")
    d, v, p = config.hidden_size, config.vocab_size, config.max_position_embeddings
    a = targets["heads"] * (d // config.num_attention_heads)  # kept attention width, heads × head dim
    f, r = targets["ffn"], targets.get("emb_rank")
    word = v * d if r is None else v * r + r * d  # E1 (V, r) + E2 (r, d), no bias
    block = (3 * (d * a + a)  # Q, K, V (GPT-2: the fused c_attn, same count)
             + a * d + d  # attention output projection
             + d * f + f + f * d + d  # FFN in, out
             + 4 * d)  # two LayerNorms
    if family_of(config) == "bert":
        rest = word + p * d + config.type_vocab_size * d + 2 * d + (d * d + d if pooler else 0)  # + emb LayerNorm
    else:
        rest = word + p * d + 2 * d  # wpe, ln_f; the LM head is tied
    return rest + targets["layers"] * block
