"""SQuAD exact match and token F1, following the official v1.1 and v2.0 evaluation scripts.

Normalisation (both versions): lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.
A question's score is the maximum over its gold answers. The versions differ only for empty strings: v2.0 drops
gold answers that normalise to "", treats a question without gold answers as "the correct prediction is the
empty string", and scores F1 = 1 when both token lists are empty; v1.1 has no unanswerable questions.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from kronbench.errors import KronbenchError

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, v2: bool) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if v2 and (not pred or not ref):
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def score(predictions: dict[str, str], golds: dict[str, list[str]], v2: bool) -> dict:
    """EM/F1 x100 over every question of `golds` (id -> gold texts; [] = unanswerable, v2 only).

    Every question needs a prediction: the official scripts would score a missing one 0, but in this harness a
    gap means predictions and references do not belong together. Extra predictions are ignored (subsets).
    """
    missing = [qid for qid in golds if qid not in predictions]
    if missing:
        raise KronbenchError(f"{len(missing)} of {len(golds)} questions have no prediction (first: {missing[:3]})")
    if not v2 and any(not g for g in golds.values()):
        raise KronbenchError("SQuAD v1.1 references must all have answers; unanswerable questions are SQuAD v2.0")
    em, fs = {}, {}
    for qid, texts in golds.items():
        texts = [t for t in texts if normalize_answer(t)] if v2 else texts
        texts = texts or [""]
        pred = predictions[qid]
        em[qid] = max(exact(pred, t) for t in texts)
        fs[qid] = max(f1(pred, t, v2) for t in texts)
    out = {"exact_match": _mean(em, golds), "f1": _mean(fs, golds), "total": len(golds)}
    if v2:
        for name, ids in (("HasAns", [q for q, g in golds.items() if g]),
                          ("NoAns", [q for q, g in golds.items() if not g])):
            if ids:  # like the official script, the breakdown is omitted for an empty group
                out[f"{name}_exact_match"], out[f"{name}_f1"] = _mean(em, ids), _mean(fs, ids)
            out[f"{name}_total"] = len(ids)
    return out


def _mean(scores: dict[str, float], ids) -> float:
    return 100.0 * sum(scores[q] for q in ids) / len(ids)
