"""DistilBERT / DistilGPT2-style students: the teacher with half of its blocks removed (docs/sources.md §4).

DistilBERT initialises its 6-layer student from teacher layers [0, 2, 4, 7, 9, 11] (transformers' distillation
`scripts/extract_distilbert.py`, see huggingface/transformers#3585) and trains it with
α_ce·KL(soft targets at T) + α_mlm·MLM + α_cos·cosine(hidden states). The student here keeps the teacher's class,
so a BERT student keeps token-type embeddings and the pooler, which DistilBERT's own class drops (a 6-layer
BertModel has 66.96M params, DistilBERT 66.36M).
"""

from __future__ import annotations

import copy
import math

from torch import nn

from kronbench.baselines.rosita import drop_layers, layers_of
from kronbench.errors import KronbenchError

# Distil README command: --alpha_ce 5.0 --alpha_mlm 2.0 --alpha_cos 1.0 (DistilGPT2 uses α_clm for "lm"; its
# 5/2/1 comes from a third-party repo, docs/sources.md §4 [S]). Temperature: distillation/train.py default --temperature.
DISTIL_WEIGHTS = {"logit_kd": 5.0, "lm": 2.0, "cos": 1.0}
DISTIL_TEMPERATURE = 2.0
DISTILBERT_LAYERS = [0, 2, 4, 7, 9, 11]  # extract_distilbert.py, 12 → 6


def alternate_layers(num_layers: int) -> list[int]:
    """Half of the teacher's blocks, evenly spread with the first and last kept.

    n = L // 2 blocks at floor(i·(L − 1)/(n − 1) + 0.5), i = 0..n−1 (halves round up). L = 12 gives DistilBERT's
    [0, 2, 4, 7, 9, 11] exactly (0, 2.2, 4.4, 6.6, 8.8, 11); L = 6 → [0, 3, 5]; L = 4 → [0, 3]; L = 2 or 3 → [0].
    """
    if num_layers < 2:
        raise KronbenchError(f"layers='alternate' needs a teacher with at least 2 layers, it has {num_layers}; give "
                             f"an explicit list of layer indices")
    n = num_layers // 2
    if n == 1:
        return [0]
    return [math.floor(i * (num_layers - 1) / (n - 1) + 0.5) for i in range(n)]


def make_distil_student(teacher: nn.Module, layers: list[int] | str = "alternate") -> nn.Module:
    """A deep copy of `teacher` (BERT or GPT-2, bare or with a task/LM head) keeping only the blocks `layers`.

    Embeddings, final LayerNorm, pooler and heads are copied unchanged (a tied LM head stays tied);
    config.num_hidden_layers (GPT-2: n_layer) becomes len(layers) and the chosen teacher indices are stored in
    `student.config.kronbench_distil_layers`. The teacher is not modified.
    """
    _, blocks = layers_of(teacher)
    if isinstance(layers, str):
        if layers != "alternate":
            raise KronbenchError(f"distil layers={layers!r}: use 'alternate' or a list of teacher layer indices")
        layers = alternate_layers(len(blocks))
    student = copy.deepcopy(teacher)
    drop_layers(student, layers)  # validates the indices
    student.config.kronbench_distil_layers = sorted(set(int(i) for i in layers))
    return student


def distil_layer_map(student: nn.Module) -> list[tuple[int, int]]:
    """(student block, teacher block) pairs for hidden-state losses, in kronbench.distill.losses' layer-map format.

    DistilBERT's own cosine loss uses only the last pair (last hidden states); every pair is here for ILKD terms.
    """
    chosen = getattr(student.config, "kronbench_distil_layers", None)
    if chosen is None:
        raise KronbenchError("distil_layer_map: student.config has no kronbench_distil_layers; build the student "
                             "with make_distil_student")
    return list(enumerate(chosen))
