"""Parameters and FLOPs, counted the way KroneckerBERT Table 1 does (docs/sources.md §1.3).

params: every unique parameter of BertModel (embeddings, encoder, pooler) or GPT2LMHeadModel (LM head tied).
params_no_head: without pooler / task heads / an untied LM head. params_no_embedding: params_no_head without the
token, position and segment embeddings (Kaplan et al.'s non-embedding count; a tied LM head is the token
embedding, so it goes too): what an LM table compares when embeddings dominate (SmolLM2: 28 M of 134.5 M).
flops: the encoder's linear layers (Q, K, V, O, FFN in/out) at `seq` tokens, Eq. 7 counting; embeddings,
attention score products, LayerNorm and heads excluded, which is how BERT-base comes to Table 1's 21.7 GFLOPs at
128 tokens.
"""

from __future__ import annotations

from torch import nn

from kronbench.kron.linear import linear_flops
from kronbench.models.registry import build_base, family_of
from kronbench.models.surgery import PATHS, kroneckerize

HEAD_NAMES = {"pooler", "classifier", "qa_outputs", "score", "cls", "lm_head"}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields tied/shared tensors once


def count_params_no_head(model: nn.Module) -> int:
    # named_parameters() names a tied tensor once, by its first (body) name: a tied LM head costs nothing here.
    return sum(p.numel() for name, p in model.named_parameters() if not set(name.split(".")) & HEAD_NAMES)


def count_params_no_embedding(model: nn.Module) -> int:
    from kronbench.kron import KroneckerEmbedding

    embedded = {id(p) for m in model.base_model.modules() if isinstance(m, (nn.Embedding, KroneckerEmbedding))
                for p in m.parameters(recurse=False)}
    return sum(p.numel() for name, p in model.named_parameters()
               if not set(name.split(".")) & HEAD_NAMES and id(p) not in embedded)


def count_flops(model: nn.Module, seq: int = 128) -> int:
    base = model.base_model
    paths = PATHS[family_of(model.config)]
    total = 0
    for block in base.get_submodule(paths["layers"]):
        for fam in ("attention", "ffn_in", "ffn_out"):
            total += sum(linear_flops(block.get_submodule(p), seq) for p in paths[fam])
    return total


def compressed_module_params(model: nn.Module) -> tuple[int, int]:
    """(dense, Kronecker) weight counts of the modules that were compressed; biases excluded."""
    from kronbench.kron import KroneckerEmbedding, KroneckerLinear

    dense = kron = 0
    for mod in model.modules():  # a KroneckerConcat's parts are KroneckerLinear and visited themselves
        if isinstance(mod, KroneckerLinear):
            dense, kron = dense + mod.out_features * mod.in_features, kron + mod.A.numel() + mod.B.numel()
        elif isinstance(mod, KroneckerEmbedding):
            dense, kron = dense + mod.num_embeddings * mod.embedding_dim, kron + mod.A.numel() + mod.B.numel()
    return dense, kron


def count_preset(model_name: str, preset, seq: int = 128) -> dict:
    """Teacher vs compressed counts for a named architecture, built from its config alone (no weights)."""
    teacher = build_base(model_name)
    row = {"model": model_name, "seq": seq, "teacher_params": count_params(teacher),
           "teacher_params_no_head": count_params_no_head(teacher), "teacher_flops": count_flops(teacher, seq)}
    spec = kroneckerize(teacher, preset, init="random")  # the teacher object becomes the student
    dense, kron = compressed_module_params(teacher)
    row.update(preset=spec["name"], spec=spec, params=count_params(teacher),
               params_no_head=count_params_no_head(teacher), flops=count_flops(teacher, seq))
    row["compression_factor"] = row["teacher_params"] / row["params"]
    row["module_compression_factor"] = dense / kron
    row["flop_ratio"] = row["teacher_flops"] / row["flops"]
    return row
