"""Baselines against Kronecker compression: DistilBERT/DistilGPT2-style layer-dropped students (distil) and
ROSITA-style structured pruning with an SVD-factorized embedding (rosita). docs/sources.md §3–4."""

from kronbench.baselines.distil import (DISTIL_TEMPERATURE, DISTIL_WEIGHTS, alternate_layers, distil_layer_map,
                                        make_distil_student)
from kronbench.baselines.rosita import (FactorizedEmbedding, TiedFactorizedHead, count_target_params, drop_layers,
                                        factorize_embedding, prune_ffn, prune_heads, prune_step, restructure,
                                        rosita_targets, structure, taylor_importance, width_schedule)

__all__ = ["DISTIL_TEMPERATURE", "DISTIL_WEIGHTS", "FactorizedEmbedding", "TiedFactorizedHead", "alternate_layers",
           "count_target_params", "distil_layer_map", "drop_layers", "factorize_embedding", "make_distil_student",
           "prune_ffn", "prune_heads", "prune_step", "restructure", "rosita_targets", "structure",
           "taylor_importance", "width_schedule"]
