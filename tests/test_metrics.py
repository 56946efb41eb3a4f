"""Metrics against sklearn/scipy and hand-computed SQuAD cases (official v1.1 and v2.0 semantics)."""

import dataclasses
import math
import random

import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from kronbench.data.registry import METRICS, get_task
from kronbench.errors import KronbenchError
from kronbench.evaluate.metrics import compute
from kronbench.evaluate.squad import normalize_answer

rng = random.Random(0)
REFS = [rng.randrange(2) for _ in range(200)]
PREDS = [r if rng.random() < 0.7 else 1 - r for r in REFS]


def test_glue_classification_matches_sklearn():
    mrpc = compute("mrpc", PREDS, REFS)
    assert list(mrpc) == ["f1", "accuracy"]
    assert mrpc["accuracy"] == pytest.approx(100 * accuracy_score(REFS, PREDS))
    assert mrpc["f1"] == pytest.approx(100 * f1_score(REFS, PREDS))
    assert compute("cola", PREDS, REFS) == {"mcc": pytest.approx(100 * matthews_corrcoef(REFS, PREDS))}


def test_labels_may_be_names_or_prepared_records():
    names = get_task("rte").labels
    by_name = compute("rte", [names[p] for p in PREDS], [{"label": r} for r in REFS])
    assert by_name == compute("rte", PREDS, REFS)


def test_multiclass_accuracy():
    assert compute("mnli", [0, 1, 2, 2], [0, 1, 2, 1]) == {"accuracy": 75.0}


def test_regression_matches_scipy():
    refs = [rng.uniform(0, 5) for _ in range(50)]
    preds = [r + rng.gauss(0, 1) for r in refs]
    out = compute("stsb", preds, refs)
    assert out["pearson"] == pytest.approx(100 * pearsonr(preds, refs).statistic)
    assert out["spearman"] == pytest.approx(100 * spearmanr(preds, refs).statistic)


@pytest.mark.parametrize("preds, refs, message", [
    ([0, 1], [0], "2 predictions for 1 references"),
    ([0], [-1], "unlabelled test rows"),
    ([2], [0], "prediction 0 is 2, not a class id 0..1"),
    (["maybe"], [0], "prediction 0 is 'maybe'"),
])
def test_bad_classification_inputs(preds, refs, message):
    with pytest.raises(KronbenchError, match=message):
        compute("mrpc", preds, refs)


def test_unlabelled_regression_reference_is_refused():
    with pytest.raises(KronbenchError, match="unlabelled test split"):
        compute("stsb", [1.0], [float("nan")])


# ------------------------------------------------------------------------------------------------------ SQuAD
def test_normalisation():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and the plum") == "apple pear and plum"


def test_squad_v1_hand_computed():
    refs = [{"id": "a", "answers": {"text": ["Denver Broncos", "The Broncos"], "answer_start": [0, 0]}},
            {"id": "b", "answers": {"text": ["red dog"], "answer_start": [0]}}]
    # a: exact after normalisation; b: tokens {big, red, dog} vs {red, dog}: P 2/3, R 1, F1 0.8
    out = compute("squad", {"a": "the broncos.", "b": "big red dog", "extra": "ignored"}, refs)
    assert out == {"exact_match": 50.0, "f1": pytest.approx(90.0), "total": 2}
    # max over gold answers: "Broncos" overlaps "The Broncos" fully after dropping the article
    assert compute("squad", {"a": "Broncos"}, {"a": ["Denver Broncos", "The Broncos"]})["exact_match"] == 100.0
    # Counter overlap: pred "a a b" vs gold "a b b" shares one a and one b: P = R = 2/3
    assert compute("squad", {"q": "x x y"}, {"q": ["x y y"]})["f1"] == pytest.approx(200 / 3)


def test_squad_v2_no_answer_and_breakdown():
    refs = {"has": ["Nile"], "none1": [], "none2": []}
    out = compute("squad-v2", {"has": "the Nile river", "none1": "", "none2": "Amazon"}, refs)
    # has: EM 0, F1 = 2 * (1/2 * 1) / (1/2 + 1) = 2/3; none1: 1/1; none2: 0/0
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert out["HasAns_exact_match"] == 0.0 and out["HasAns_f1"] == pytest.approx(200 / 3)
    assert out["NoAns_exact_match"] == out["NoAns_f1"] == 50.0
    assert (out["total"], out["HasAns_total"], out["NoAns_total"]) == (3, 1, 2)


def test_squad_v2_without_unanswerable_omits_noans_scores():
    out = compute("squad-v2", {"q": "Nile"}, {"q": ["Nile"]})
    assert out["NoAns_total"] == 0 and "NoAns_f1" not in out and out["f1"] == 100.0


def test_squad_errors():
    with pytest.raises(KronbenchError, match="1 of 2 questions have no prediction"):
        compute("squad", {"a": "x"}, {"a": ["x"], "b": ["y"]})
    with pytest.raises(KronbenchError, match="unanswerable questions are SQuAD v2.0"):
        compute("squad", {"a": ""}, {"a": []})


# ------------------------------------------------------------------------------------------------- perplexity
def test_perplexity_sums_windows():
    windows = [{"nll_sum": 10.0, "tokens": 4}, {"nll_sum": 2.0, "tokens": 2}]
    assert compute("wikitext-103", windows) == {"perplexity": pytest.approx(math.exp(2.0))}
    with pytest.raises(KronbenchError, match="at least one"):
        compute("lambada", {"nll_sum": 0.0, "tokens": 0})


def test_every_registered_metric_name_is_computed():
    for name, kind in (("mrpc", "pair_classification"), ("stsb", "regression")):
        task = dataclasses.replace(get_task(name), metrics=list(METRICS[kind]))
        assert set(compute(task, PREDS, REFS)) == set(METRICS[kind])
    qa = compute("squad-v2", {"a": "x", "b": ""}, {"a": ["x"], "b": []})
    assert set(METRICS["span_qa"]) <= set(qa)


def test_chance_levels_all_majority_scores_and_permutation_se():
    """chance = the all-majority predictor's score; SE = the spread of label-shuffled predictions (issue 18)."""
    from kronbench.evaluate.metrics import chance_levels

    refs = [1] * 280 + [0] * 120  # p = 0.7 majority class 1
    mrpc = chance_levels("mrpc", refs)
    assert mrpc["accuracy"]["chance"] == pytest.approx(70.0)
    assert mrpc["f1"]["chance"] == pytest.approx(100 * 2 * 0.7 / 1.7)  # precision 0.7, recall 1
    assert mrpc["accuracy"]["chance_se"] == pytest.approx(100 * math.sqrt(0.7 * 0.3 / 400), rel=0.25)
    assert mrpc["f1"]["chance_se"] > 0 and mrpc == chance_levels("mrpc", [{"label": r} for r in refs])  # seeded
    cola = chance_levels("cola", [0] * 300 + [1] * 100)  # majority class 0: MCC 0, yet a nonzero spread
    assert cola["mcc"]["chance"] == 0.0 and cola["mcc"]["chance_se"] == pytest.approx(100 / math.sqrt(400), rel=0.25)
    assert chance_levels("rte", [0] * 200 + [1] * 200)["accuracy"]["chance_se"] == pytest.approx(2.5, rel=0.25)
    assert chance_levels("sst2", [0] * 300 + [1] * 100)["accuracy"]["chance"] == pytest.approx(75.0)
    mnli = chance_levels("mnli", [0] * 50 + [1] * 30 + [2] * 20)
    assert mnli["accuracy"]["chance"] == pytest.approx(50.0) and mnli["accuracy"]["chance_se"] > 0
    stsb = chance_levels("stsb", [rng.uniform(0, 5) for _ in range(400)])
    for m in ("pearson", "spearman"):  # the mean predictor: correlation 0; shuffles: ~100/sqrt(n)
        assert stsb[m]["chance"] == 0.0 and stsb[m]["chance_se"] == pytest.approx(5.0, rel=0.25)
    assert chance_levels("squad", []) == {} and chance_levels("wikitext-103", []) == {}
    with pytest.raises(KronbenchError, match="rte: reference 0 is -1"):
        chance_levels("rte", [-1, 0])
