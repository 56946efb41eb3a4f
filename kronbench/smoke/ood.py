"""The OOD sets in their official layouts: PAWS-Wiki (`final/{train,dev,test}.tsv`), IMDb (`aclImdb/{train,test}/
{pos,neg}/<id>_<rating>.txt` + `imdb.vocab`), HANS (`heuristics_evaluation_set.txt`) and AdvGLUE (`dev/dev.json`,
where the official dev.zip unpacks it).

Text is real (`smoke.text`): PAWS and HANS pairs keep almost every word of the sentence (their point: lexical
overlap does not decide the label), IMDb reviews are runs of news sentences, AdvGLUE rows are GLUE-style rows with a typo.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import re

from kronbench.errors import KronbenchError
from kronbench.smoke import glue
from kronbench.smoke import text as T

HANS_COLS = ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
             "sentence2_parse", "sentence1", "sentence2", "pairID", "heuristic", "subcase", "template"]
# heuristic -> (subcase of an entailed pair, subcase of a non-entailed one), HANS's names
_HANS_CASES = {"lexical_overlap": ("le_relative_clause", "ln_subject/object_swap"),
               "subsequence": ("se_PP_on_obj", "sn_NP/S"),
               "constituent": ("ce_after_since_clause", "cn_embedded_under_if")}


def _rng(*key) -> random.Random:
    return random.Random(":".join(["smoke", *map(str, key), str(T.SEED)]))


# -------------------------------------------------------------------------------------------------------- PAWS
def paws_example(p: T.Pool, k: int) -> dict | None:
    """1 (paraphrase): the sentence less one word; 0: two of its names exchanged (same words, other meaning)."""
    _, a, _ = p.take()
    b = T.drop_word(a, p.rng) if k else T.swap_names(a)
    return None if b is None else {"sentence1": T.ptb(a), "sentence2": T.ptb(b), "label": str(k)}


def paws(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    for name, split, n in (("train", "train", rows), ("dev", "validation", eval_rows), ("test", "test", eval_rows)):
        ex = T.examples(n, paws_example, T.Pool("enwiki", split, _rng("paws", name)), 2)
        out[f"{name}.tsv"] = glue.tsv(["id", "sentence1", "sentence2", "label"],
                                      [[str(i), e["sentence1"], e["sentence2"], e["label"]]
                                       for i, e in enumerate(ex, 1)])
    return out


# -------------------------------------------------------------------------------------------------------- IMDb
def _reviews(docs, rng: random.Random):
    """Runs of 3-6 consecutive sentences of the stories, with one paragraph break written as IMDb writes it
    (`<br /><br />`)."""
    for doc in docs:
        sents = [s for p in doc.paragraphs for s in p]
        i = 0
        while len(sents) - i >= 3:
            run = sents[i:i + rng.randint(3, 6)]
            i += len(run)
            cut = len(run) // 2
            yield " ".join(run[:cut]) + "<br /><br />" + " ".join(run[cut:])


def imdb(rows: int, eval_rows: int) -> dict[str, str]:
    out, words = {}, collections.Counter()
    for name, n in (("train", rows), ("test", eval_rows)):
        rng = _rng("imdb", name)
        docs = list(T.documents("news", name))
        rng.shuffle(docs)
        reviews = list(itertools.islice(_reviews(docs, rng), n))
        if len(reviews) < n:
            raise KronbenchError(f"smoke imdb: {n} reviews asked for, the {name} news stories give {len(reviews)}; "
                                 f"ask for fewer rows")
        for i, review in enumerate(reviews):
            label = ("neg", "pos")[i % 2]
            rating = rng.randint(1, 4) if label == "neg" else rng.randint(7, 10)
            words.update(re.findall(r"[a-z0-9']+", review.lower().replace("<br />", " ")))
            out[f"{name}/{label}/{i // 2}_{rating}.txt"] = review  # no final newline, as in aclImdb
    # imdb.vocab: one word per line, most frequent first
    out["imdb.vocab"] = "".join(w + "\n" for w, _ in sorted(words.items(), key=lambda x: (-x[1], x[0])))
    return out


# -------------------------------------------------------------------------------------------------------- HANS
def hans(eval_rows: int) -> str:
    """The evaluation set: premise and hypothesis share (almost) all words; entailment = a word dropped,
    non-entailment = two names or words exchanged."""
    p = T.Pool("enwiki", "test", _rng("hans"))

    def make(pool, k):
        _, a, _ = pool.take()
        b = T.drop_word(a, pool.rng) if k == 0 else (T.swap_names(a) or T.scramble(a, pool.rng))
        return None if b is None else {"s1": T.ptb(a), "s2": T.ptb(b), "label": ("entailment", "non-entailment")[k]}

    body = []
    heuristics = list(_HANS_CASES)
    for i, e in enumerate(T.examples(eval_rows, make, p, 2)):
        heuristic = heuristics[i % 3]
        (b1, p1), (b2, p2) = glue.parses(e["s1"]), glue.parses(e["s2"])
        subcase = _HANS_CASES[heuristic][e["label"] != "entailment"]
        body.append([e["label"], b1, b2, p1, p2, e["s1"], e["s2"], f"ex{i}", heuristic, subcase,
                     f"temp{1 + i % 5}"])
    return glue.tsv(HANS_COLS, body)


# ----------------------------------------------------------------------------------------------------- AdvGLUE
# key -> (GLUE-style example maker, classes, corpus, field renames, label ids by the maker's label)
_ADV = {
    "sst2": (glue.sst2_example, 2, "enwiki", {"sentence": "sentence"}, {"0": 0, "1": 1}),
    "qqp": (glue.question_pair_example, 2, "enwiki", {"question1": "question1", "question2": "question2"},
            {"0": 0, "1": 1}),
    "mnli": (glue.nli_example, 3, "enwiki", {"sentence1": "premise", "sentence2": "hypothesis"},
             {x: i for i, x in enumerate(glue.NLI)}),
    "mnli-mm": (glue.nli_example, 3, "news", {"sentence1": "premise", "sentence2": "hypothesis"},
                {x: i for i, x in enumerate(glue.NLI)}),
    "qnli": (glue.qnli_example, 2, "enwiki", {"question": "question", "sentence": "sentence"},
             {"entailment": 0, "not_entailment": 1}),
    "rte": (glue.rte_example, 2, "enwiki", {"sentence1": "sentence1", "sentence2": "sentence2"},
            {"entailment": 0, "not_entailment": 1}),
}


def advglue(eval_rows: int) -> dict[str, str]:
    """dev.json: {task key: [{<text fields>, "label", "idx"}]}, one text field of each row with a typo."""
    doc = {}
    for key, (make, classes, corpus, fields, ids) in _ADV.items():
        p = T.Pool(corpus, "validation", _rng("advglue", key))
        rows = []
        for i, e in enumerate(T.examples(eval_rows, make, p, classes)):
            row = {new: e[old] for old, new in fields.items()}
            hit = p.rng.choice(list(row))
            row[hit] = T.typo(row[hit], p.rng)
            rows.append({**row, "label": ids[e["label"]], "idx": i})
        doc[key] = rows
    return {"dev.json": json.dumps(doc)}
