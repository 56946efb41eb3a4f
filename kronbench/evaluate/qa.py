"""Span-QA post-processing: per-token start/end logits of every window -> one answer text per question.

For each question, over all windows (features) of its context: take the `n_best` highest start and end logits
among context tokens, keep the pairs with start <= end and at most `max_answer_len` tokens, and answer with the
context characters of the pair of highest start + end logit. SQuAD v2.0: the "null" score is start + end logit
at [CLS] (the smallest over the question's windows); the answer is "" when it beats the best span by more than
`null_threshold`.

The result {id: text} is what `kronbench.evaluate.metrics.compute(task, predictions, references)` takes as
predictions, and the records themselves serve as references:
    compute("squad", postprocess(records, features, start, end, v2=False), records)
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from kronbench.errors import KronbenchError


def postprocess(examples, features, start_logits, end_logits, n_best: int = 20, max_answer_len: int = 30, *,
                v2: bool, null_threshold: float = 0.0) -> dict[str, str]:
    """Answer text per question id ("" = no answer).

    examples: span_qa records (`id`, `context`); features: `encode_qa(examples, ..., train=False)` output (each
    has `example_id` and `offsets`); start_logits, end_logits: one row per feature (a (N, T) array or tensor, or
    a list of 1-D rows, e.g. gathered from batches of different widths), each at least as long as the feature.
    """
    if not len(features) == len(start_logits) == len(end_logits):
        raise KronbenchError(f"{len(features)} QA features but {len(start_logits)} start and {len(end_logits)} "
                             "end logit rows: pass one row per feature, in the order encode_qa returned them")
    windows = defaultdict(list)  # example id -> its feature indices
    for j, f in enumerate(features):
        if "offsets" not in f:
            raise KronbenchError(f"QA feature {j} has no `offsets`: encode the examples with train=False")
        windows[f["example_id"]].append(j)
    answers = {}
    for ex in examples:
        if not windows[ex["id"]]:
            raise KronbenchError(f"QA example {ex['id']!r} has no feature: encode and predict the same examples")
        best, text, null = -math.inf, "", math.inf
        for j in windows[ex["id"]]:
            offsets = features[j]["offsets"]
            start, end = _row(start_logits[j], offsets, j), _row(end_logits[j], offsets, j)  # (T,), (T,)
            null = min(null, start[0] + end[0])
            in_ctx = np.array([o is not None for o in offsets])  # (T,)
            top_s = np.argsort(np.where(in_ctx, -start, np.inf), kind="stable")[:n_best]  # ties: earlier token
            top_e = np.argsort(np.where(in_ctx, -end, np.inf), kind="stable")[:n_best]
            for s in top_s:
                for e in top_e:
                    if offsets[s] is None or offsets[e] is None or not s <= e < s + max_answer_len:
                        continue
                    if start[s] + end[e] > best:
                        best, text = start[s] + end[e], ex["context"][offsets[s][0]:offsets[e][1]]
        answers[ex["id"]] = "" if v2 and null > best + null_threshold else text
    return answers


def _row(logits, offsets, j: int) -> np.ndarray:
    """One feature's logits as a float array cut to its length (drops the batch padding)."""
    if hasattr(logits, "detach"):  # a torch tensor (any dtype, any device)
        logits = logits.detach().float().cpu().numpy()
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1 or len(logits) < len(offsets):
        raise KronbenchError(f"logits of QA feature {j} have shape {logits.shape}, expected ({len(offsets)},) or "
                             "longer (one logit per token of the feature)")
    return logits[:len(offsets)]
