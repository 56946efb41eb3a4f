"""Structured pruning of BERT/GPT-2 models: layers, attention heads, FFN neurons and a low-rank word embedding are
removed, not masked (the surgery ROSITA's baseline needs, kronbench.baselines.rosita, and what loads its
checkpoints, kronbench.models.checkpoints).

Every function edits the model in place. Heads and neurons are indices into the *current* model. The result's
shape is written to `model.config.kronbench_pruned` ({"heads": [per layer], "ffn": [per layer], "emb_rank"}), which
`restructure` reads to rebuild a freshly built model's shapes before loading a pruned checkpoint. Module paths come
from the family records (kronbench.models.families).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from kronbench.errors import KronbenchError
from kronbench.kron.embedding import TiedHead
from kronbench.models.families import FAMILIES
from kronbench.models.registry import family_of


# --------------------------------------------------------------------------------------------- module access
def layers_of(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """('bert' | 'gpt2', the transformer blocks) of a BERT/GPT-2 model or any of its task-head classes."""
    family = family_of(model.config)
    if getattr(model.config, "add_cross_attention", False):
        raise KronbenchError("config.add_cross_attention=True: pruning handles self-attention only; prune a model "
                             "without cross-attention")
    return family, model.base_model.get_submodule(FAMILIES[family].layers)


def attn_of(block: nn.Module, family: str) -> nn.Module:
    return block.get_submodule(FAMILIES[family].self_attention)


def attn_out(block: nn.Module, family: str) -> nn.Module:  # (H·dh → d) output projection
    return block.get_submodule(FAMILIES[family].attn_out)


def ffn_in(block: nn.Module, family: str) -> nn.Module:  # d → I
    return block.get_submodule(FAMILIES[family].ffn_in[0])


def ffn_out(block: nn.Module, family: str) -> nn.Module:  # I → d
    return block.get_submodule(FAMILIES[family].ffn_out[0])


def n_heads(block: nn.Module, family: str) -> tuple[int, int]:
    """(heads, head dim) of a block's self-attention."""
    a, (heads, size) = attn_of(block, family), FAMILIES[family].heads
    if heads is None:
        raise KronbenchError(f"head pruning (ROSITA) handles bert and gpt2 attention; {family}'s grouped-query "
                             f"attention shares K/V heads between query heads and is not pruned here: drop "
                             f"'rosita' from the model's baselines")
    return getattr(a, heads), getattr(a, size)


def n_ffn(block: nn.Module, family: str) -> int:
    m = ffn_in(block, family)
    return m.out_features if isinstance(m, nn.Linear) else m.nf


def in_major(mod: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """A weight-shaped tensor as (in, out): nn.Linear stores (out, in), transformers' Conv1D stores (in, out)."""
    return t.T if isinstance(mod, nn.Linear) else t


def _slice_(mod: nn.Module, idx: torch.Tensor, side: str) -> None:
    """Keep only the features `idx` on the 'out' or 'in' side of an nn.Linear / Conv1D, in place."""
    if not isinstance(mod, (nn.Linear, Conv1D)):
        raise KronbenchError(f"cannot prune a {type(mod).__name__}: pruning needs dense nn.Linear/Conv1D layers; "
                             f"prune before Kronecker compression (kronbench.models.surgery.kroneckerize)")
    dim = {(nn.Linear, "out"): 0, (nn.Linear, "in"): 1, (Conv1D, "out"): 1, (Conv1D, "in"): 0}[
        (nn.Linear if isinstance(mod, nn.Linear) else Conv1D, side)]
    w = mod.weight
    idx = idx.to(w.device)
    mod.weight = nn.Parameter(w.detach().index_select(dim, idx).clone(), requires_grad=w.requires_grad)
    if side == "out" and mod.bias is not None:  # a bias belongs to the out-features
        mod.bias = nn.Parameter(mod.bias.detach()[idx].clone(), requires_grad=mod.bias.requires_grad)
    if isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape
    else:
        mod.nx, mod.nf = mod.weight.shape


def _check_keep(keep, n: int, what: str) -> list[int]:
    keep = sorted(set(int(i) for i in keep))
    if not keep:
        raise KronbenchError(f"{what}: keep at least one (an empty layer breaks the forward pass); to remove a whole "
                             f"layer use drop_layers")
    if keep[0] < 0 or keep[-1] >= n:
        raise KronbenchError(f"{what}: indices {keep} out of range; there are {n} (0..{n - 1})")
    return keep


def _block(blocks: nn.ModuleList, layer: int, what: str) -> nn.Module:
    if not 0 <= layer < len(blocks):
        raise KronbenchError(f"{what}: layer {layer} out of range; the model has layers 0..{len(blocks) - 1}")
    return blocks[layer]


# --------------------------------------------------------------------------------------------- depth
def drop_layers(model: nn.Module, keep: list[int]) -> nn.Module:
    """Keep only the blocks `keep` (ROSITA keeps the bottom ones: keep=range(8) of 12), in place.

    Updates config.num_hidden_layers (GPT-2's n_layer is an alias) and renumbers each attention's `layer_idx` so
    the KV cache, which transformers 5 sizes from config.num_hidden_layers, indexes the new blocks.
    """
    family, blocks = layers_of(model)
    keep = _check_keep(keep, len(blocks), "drop_layers keep")
    new = nn.ModuleList([blocks[i] for i in keep])
    parent, _, leaf = FAMILIES[family].layers.rpartition(".")
    setattr(model.base_model.get_submodule(parent) if parent else model.base_model, leaf, new)
    for j, block in enumerate(new):
        attn = attn_of(block, family)
        attn.layer_idx = j
        if family == "gpt2" and attn.scale_attn_by_inverse_layer_idx:  # scaling 1/(layer + 1): follow the new index
            attn.scaling = (attn.head_dim ** -0.5 if attn.scale_attn_weights else 1.0) / (j + 1)
    model.config.num_hidden_layers = len(keep)
    if getattr(model.config, "kronbench_pruned", None) is not None:
        record_structure(model)
    return model


# --------------------------------------------------------------------------------------------- width
def prune_heads(model: nn.Module, keep: dict[int, list[int]]) -> nn.Module:
    """Keep heads keep[layer] of each listed layer: slice Q/K/V out-features and the output projection's in-features.

    BERT: attention.self.{query,key,value} and attention.output.dense; the module's num_attention_heads and
    all_head_size are updated (transformers 5 reshapes with view(..., -1, attention_head_size), and kronbench's
    capture reads num_attention_heads). GPT-2: c_attn holds [Q | K | V] side by side (Conv1D, weight (in, out)), so
    the kept columns are taken from each third; c_proj's rows; num_heads and split_size (the Q/K/V width) updated.
    Layers not in `keep` are untouched.
    """
    family, blocks = layers_of(model)
    for layer, heads in keep.items():
        block = _block(blocks, layer, "prune_heads")
        n, dh = n_heads(block, family)
        heads = _check_keep(heads, n, f"prune_heads layer {layer}")
        idx = (torch.tensor(heads)[:, None] * dh + torch.arange(dh)).flatten()  # (k·dh,) feature indices
        attn = attn_of(block, family)
        if family == "bert":
            for proj in (attn.query, attn.key, attn.value):
                _slice_(proj, idx, "out")
            attn.num_attention_heads, attn.all_head_size = len(heads), len(heads) * dh
        else:
            width = attn.split_size  # current Q (= K = V) width
            _slice_(attn.c_attn, torch.cat([idx, idx + width, idx + 2 * width]), "out")
            attn.num_heads, attn.split_size = len(heads), len(heads) * dh
        _slice_(attn_out(block, family), idx, "in")
    record_structure(model)
    return model


def prune_ffn(model: nn.Module, keep: dict[int, list[int]]) -> nn.Module:
    """Keep FFN neurons keep[layer]: the first FFN linear's out-features and the second's in-features.

    BERT: intermediate.dense / output.dense; GPT-2: mlp.c_fc / mlp.c_proj.
    """
    family, blocks = layers_of(model)
    for layer, neurons in keep.items():
        block = _block(blocks, layer, "prune_ffn")
        idx = torch.tensor(_check_keep(neurons, n_ffn(block, family), f"prune_ffn layer {layer}"))
        _slice_(ffn_in(block, family), idx, "out")
        _slice_(ffn_out(block, family), idx, "in")
    record_structure(model)
    return model


# --------------------------------------------------------------------------------------------- embedding
class FactorizedEmbedding(nn.Module):
    """Word embedding X (V, d) ≈ E1 (V, r) · E2 (r, d): a V×r lookup, then an r → d map (ROSITA's Emb1, Emb2)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx=None, device=None,
                 dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank
        self.padding_idx = padding_idx
        self.lookup = nn.Embedding(num_embeddings, rank, padding_idx, device=device, dtype=dtype)  # E1 (V, r)
        self.proj = nn.Linear(rank, embedding_dim, bias=False, device=device, dtype=dtype)  # weight E2ᵀ (d, r)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, rank: int, padding_idx=None) -> "FactorizedEmbedding":
        """Truncated SVD X = U S Vᵀ: E1 = U_r S_r, E2 = V_rᵀ (the best rank-r approximation, Eckart–Young)."""
        v, d = weight.shape
        u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)  # (V, k), (k,), (k, d)
        emb = cls(v, d, rank, padding_idx, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            emb.lookup.weight.copy_(u[:, :rank] * s[:rank])
            emb.proj.weight.copy_(vh[:rank].T)
        return emb

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.lookup(input_ids))  # (*, r) → (*, d)

    def dense_weight(self) -> torch.Tensor:
        return self.lookup.weight @ self.proj.weight.T  # (V, d)

    def as_output(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden @ Xᵀ without forming X: (*, d) → (*, r) → (*, V); the tied LM head."""
        return (hidden @ self.proj.weight) @ self.lookup.weight.T


class TiedFactorizedHead(TiedHead):
    """Tied to a FactorizedEmbedding: h·E2ᵀ·E1ᵀ + b."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.embedding[0].as_output(hidden)


def factorize_embedding(model: nn.Module, rank: int, init: str = "svd") -> nn.Module:
    """Replace the word embedding by a rank-`rank` FactorizedEmbedding (ROSITA: 128 of 768), in place.

    A second call with a smaller rank re-factorizes E1·E2 (iterative rank pruning). An output projection tied to
    the embedding (GPT-2 lm_head, BERT MLM decoder) stays tied: it becomes a TiedFactorizedHead sharing E1 and E2,
    so the model keeps one copy of the vocabulary matrix (ROSITA itself is BERT-only with classifier heads). An
    untied head is left as it is. init="random" only builds the shapes (`restructure`, before loading weights).
    Do not call model.tie_weights() afterwards: transformers would look for the removed `...wte.weight`.
    """
    old = model.get_input_embeddings()
    if isinstance(old, FactorizedEmbedding):
        weight, pad, current = old.dense_weight(), old.padding_idx, old.rank
    elif isinstance(old, nn.Embedding):
        weight, pad, current = old.weight, old.padding_idx, min(old.weight.shape)
    else:
        raise KronbenchError(f"factorize_embedding: the input embedding is a {type(old).__name__}; it needs a dense "
                             f"nn.Embedding (factorize before Kronecker compression)")
    if not 1 <= rank <= current:
        raise KronbenchError(f"factorize_embedding: rank={rank} must be in 1..{current} (the current rank); ranks "
                             f"only go down")
    if init == "svd":
        new = FactorizedEmbedding.from_weight(weight, rank, pad)
    elif init == "random":
        new = FactorizedEmbedding(*weight.shape, rank, pad, device=weight.device, dtype=weight.dtype)
    else:
        raise KronbenchError(f"factorize_embedding: init={init!r}; use 'svd' or 'random'")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = head is not None and (getattr(head, "weight", None) is getattr(old, "weight", False) or
                                 (isinstance(head, TiedFactorizedHead) and head.embedding[0] is old))
    model.set_input_embeddings(new)
    if tied:
        model.set_output_embeddings(TiedFactorizedHead(new, getattr(head, "bias", None)))
    record_structure(model)
    return model


# --------------------------------------------------------------------------------------------- record / rebuild
def structure(model: nn.Module) -> dict:
    """The pruned shape: {"heads": [per layer], "ffn": [per layer], "emb_rank": int | None}."""
    family, blocks = layers_of(model)
    emb = model.get_input_embeddings()
    return {"heads": [n_heads(b, family)[0] for b in blocks], "ffn": [n_ffn(b, family) for b in blocks],
            "emb_rank": emb.rank if isinstance(emb, FactorizedEmbedding) else None}


def record_structure(model: nn.Module) -> None:
    model.config.kronbench_pruned = structure(model)


def restructure(model: nn.Module, shape: dict | None = None) -> nn.Module:
    """Give a model freshly built from a pruned checkpoint's config.json the pruned shapes, before its weights load.

    The depth is already in the saved config (num_hidden_layers); heads/neurons become the first k of each layer
    and the embedding a random-initialised FactorizedEmbedding, all overwritten by the checkpoint's weights.
    """
    shape = shape if shape is not None else getattr(model.config, "kronbench_pruned", None)
    family, blocks = layers_of(model)
    if shape is None or len(shape.get("heads", [])) != len(blocks) or len(shape.get("ffn", [])) != len(blocks):
        raise KronbenchError(f"restructure: config.kronbench_pruned must list heads and ffn for each of the "
                             f"{len(blocks)} layers, got {shape!r}; is this a ROSITA-pruned checkpoint?")
    prune_heads(model, {i: range(n) for i, n in enumerate(shape["heads"])})
    prune_ffn(model, {i: range(n) for i, n in enumerate(shape["ffn"])})
    if shape.get("emb_rank") is not None:
        factorize_embedding(model, shape["emb_rank"], init="random")
    return model
