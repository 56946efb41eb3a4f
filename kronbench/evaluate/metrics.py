"""Task metrics: `compute(task, predictions, references) -> {metric: value}`.

Values are x100 like the papers (accuracy, f1, mcc, pearson, spearman, exact_match); perplexity is raw.
Metric names and which task uses which come from the task registry (`metrics` in the YAML record).

The `evaluate` package is deliberately not used: every metric it offers is a module loaded from the Hugging Face
hub, which fails offline, and importing it costs ~6 s. The official
definitions are short: sklearn/scipy for GLUE, `squad.py` for the official SQuAD scripts, one line for perplexity.

Inputs, per task kind:
- classification: lists of labels (class ids or class names); regression: lists of numbers. A list of records
  with a `label` key (a prepared split's rows) is accepted for either side.
- span_qa: predictions {id: answer text} (or records with `id` and `prediction_text`); references SQuAD-flat
  records (`id`, `answers`: {"text": [...]}) or {id: [gold texts]}.
- lm: predictions {"nll_sum": float, "tokens": int} or a list of such (summed, e.g. one per window);
  perplexity = exp(nll_sum / tokens). References are not used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kronbench.data import local
from kronbench.data.registry import Task, get_task
from kronbench.errors import KronbenchError
from kronbench.evaluate import squad


def compute(task: str | Task, predictions, references=None) -> dict:
    """Every metric of `task`'s record (plus question counts for span_qa)."""
    task = get_task(task) if isinstance(task, str) else task
    if task.kind == "lm":
        return {"perplexity": perplexity(predictions)}
    if task.kind == "span_qa":
        result = squad.score(_qa_predictions(predictions), _qa_references(references),
                             v2="NoAns_exact_match" in task.metrics)
        return {k: v for k, v in result.items() if k in task.metrics or k.endswith("total")}
    preds, refs = _labels(task, predictions, "prediction"), _labels(task, references, "reference")
    if len(preds) != len(refs) or not refs:
        raise KronbenchError(f"{task.name}: {len(preds)} predictions for {len(refs)} references")
    return _classification(task.metrics, refs, preds)


CHANCE_PERMUTATIONS = 200


def chance_levels(task: str | Task, records) -> dict:
    """{metric: {"chance", "chance_se"}} of a classification/regression split ({} for span_qa and lm), x100.

    A student is only worth a retention if it beats a predictor that ignores its input (issue 18: a student
    predicting the majority class got "75 % retention"). chance = the metric of the all-majority-class predictor
    (majority share for accuracy, F1 of class 1 when everything is the majority class, MCC 0); for regression the
    constant mean prediction, whose correlation is 0. chance_se = the std of the metric over seeded random
    permutations of the gold labels (no-information predictions with the gold class balance): the noise a score
    must clear, nonzero for every metric (MCC's is about 100/sqrt(n)). Vectorised numpy, ~0.1 s for 10k examples."""
    import numpy as np

    task = get_task(task) if isinstance(task, str) else task
    if task.kind in ("span_qa", "lm"):
        return {}
    refs = np.asarray(_labels(task, records, "reference"), dtype=float if task.kind == "regression" else int)
    if not len(refs):
        raise KronbenchError(f"{task.name}: no references; a chance level needs a labelled split")
    index = np.stack(_permutations(len(refs)))  # (P, n)
    perms = refs[index]
    if task.kind == "regression":
        from scipy.stats import rankdata

        ranks = rankdata(refs)  # a permutation's ranks are the permuted ranks: spearman = pearson of ranks
        chance = dict.fromkeys(task.metrics, 0.0)
        spread = {"pearson": _correlations(refs, perms), "spearman": _correlations(ranks, ranks[index])}
    else:
        majority = int(np.bincount(refs, minlength=len(task.labels)).argmax())  # ties: the lowest class id
        chance = _classification(task.metrics, refs.tolist(), [majority] * len(refs))
        spread = {"accuracy": (perms == refs).mean(1), "f1": _f1s(refs, perms), "mcc": _mccs(refs, perms)}
    return {m: {"chance": chance[m], "chance_se": 100.0 * float(np.std(spread[m], ddof=1))} for m in task.metrics}


def _permutations(n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.permutation(n) for _ in range(CHANCE_PERMUTATIONS)]


def _f1s(refs, perms):
    """F1 of class 1 per permutation; a permutation keeps the class counts, so precision and recall share them."""
    gold = (refs == 1).sum()
    return 2 * ((perms == 1) & (refs == 1)).sum(1) / max(2 * gold, 1)


def _mccs(refs, perms):
    """Multiclass MCC (sklearn's formula) per permutation: predicted class counts equal the gold ones."""
    import numpy as np

    n, counts = len(refs), np.bincount(refs).astype(float)
    denom = n * n - (counts ** 2).sum()
    return ((perms == refs).sum(1) * n - (counts ** 2).sum()) / denom if denom else np.zeros(len(perms))


def _correlations(refs, perms):
    """Pearson correlation of each permuted row with refs (same values, so same variance; 0 if constant)."""
    import numpy as np

    z = refs - refs.mean()
    norm = float(np.sqrt((z ** 2).sum()))
    return (perms - refs.mean()) @ z / norm ** 2 if norm else np.zeros(len(perms))


def perplexity(predictions) -> float:
    parts = predictions if isinstance(predictions, list) else [predictions]
    try:
        nll, tokens = sum(float(p["nll_sum"]) for p in parts), sum(int(p["tokens"]) for p in parts)
    except (TypeError, KeyError, ValueError) as e:
        raise KronbenchError(f"LM predictions must be {{'nll_sum': float, 'tokens': int}} or a list of them ({e})")
    if tokens <= 0:
        raise KronbenchError(f"LM predictions cover {tokens} tokens; perplexity needs at least one")
    return math.exp(nll / tokens)


def load_file(path: str | Path):
    """A predictions/references file: JSON (any value), JSONL (a list, one value per line), a prepared split
    (.parquet -> list of records) or an official SQuAD json (data/paragraphs/qas -> list of flat records)."""
    path = Path(path)
    if not path.is_file():
        raise KronbenchError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [_json(line, path, n) for n, line in enumerate(local.lines(path), 1) if line.strip()]
    value = _json("".join(local.lines(path)), path, 0)
    if isinstance(value, dict) and isinstance(value.get("data"), list):  # an official SQuAD file
        return [row for row, _ in local.read("squad_json", path, {}, "")]
    return value


def _json(text: str, path: Path, line: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise KronbenchError(f"{path}:{line or e.lineno}: invalid JSON ({e.msg})") from None


def _labels(task: Task, values, side: str) -> list:
    if not isinstance(values, list):
        raise KronbenchError(f"{task.name}: {side}s must be a list of labels, got {type(values).__name__}")
    values = [v["label"] if isinstance(v, dict) and "label" in v else v for v in values]
    if task.kind == "regression":
        try:
            out = [float(v) for v in values]
        except (TypeError, ValueError) as e:
            raise KronbenchError(f"{task.name}: {side}s must be numbers ({e})") from None
        if any(math.isnan(v) for v in out):
            raise KronbenchError(f"{task.name}: a {side} is NaN (an unlabelled test split cannot be scored)")
        return out
    index = {name: i for i, name in enumerate(task.labels)}
    out = []
    for i, v in enumerate(values):
        label = index.get(v) if isinstance(v, str) else v
        if not (isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(index)):
            hint = " (-1 marks unlabelled test rows: score the validation split)" if v == -1 else ""
            raise KronbenchError(f"{task.name}: {side} {i} is {v!r}, not a class id 0..{len(index) - 1} "
                                 f"or one of {task.labels}{hint}")
        out.append(label)
    return out


def _qa_predictions(predictions) -> dict[str, str]:
    if isinstance(predictions, list):
        try:
            predictions = {p["id"]: p["prediction_text"] for p in predictions}
        except (TypeError, KeyError):
            raise KronbenchError("QA predictions must be {id: text} or records with `id` and `prediction_text`")
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        raise KronbenchError("QA predictions must map question ids to answer strings ('' = no answer)")
    return predictions


def _qa_references(references) -> dict[str, list[str]]:
    if isinstance(references, dict):
        golds = references
    elif isinstance(references, list):
        try:
            golds = {r["id"]: r["answers"]["text"] for r in references}
        except (TypeError, KeyError):
            raise KronbenchError("QA references must be SQuAD-flat records (`id`, `answers`: {'text': [...]}) "
                                 "or {id: [gold texts]}") from None
    else:
        raise KronbenchError(f"QA references must be a list of records or a dict, got {type(references).__name__}")
    if not golds or not all(isinstance(g, list) and all(isinstance(t, str) for t in g) for g in golds.values()):
        raise KronbenchError("QA references must give each question id a list of gold answer strings")
    return golds


def _classification(names: list[str], refs: list, preds: list) -> dict:
    from scipy.stats import pearsonr, spearmanr  # sklearn + scipy cost ~1.5 s: imported only when scoring
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    fns = {"accuracy": accuracy_score, "mcc": matthews_corrcoef,
           "f1": lambda r, p: f1_score(r, p, pos_label=1, zero_division=0.0),  # F1 of class 1 (GLUE)
           "pearson": lambda r, p: pearsonr(p, r).statistic, "spearman": lambda r, p: spearmanr(p, r).statistic}
    return {m: 100.0 * float(fns[m](refs, preds)) for m in names}
