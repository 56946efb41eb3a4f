"""Tiny fixtures in the official distribution layouts, written by the tests (text invented for the tests).

`write_all(root)` writes every layout under `root` and returns {task name: --data-dir}. `EXPECTED` gives, per
task and split, the labels the fixture rows must come out with (-1 / None = unlabelled test rows).
`OWNED` lists the tasks whose official layouts are covered here (every registered task except `embedded-*`).
"""

from __future__ import annotations

import json
from pathlib import Path

# GLUE: subdir -> file -> (header or None, rows). Quotes are deliberately unbalanced, as in the real files.
_GLUE = {
    "CoLA": {
        "train.tsv": (None, [["ks08", "1", "", 'The dog barked "loudly.'], ["ks08", "0", "*", "Dog the barked."]]),
        "dev.tsv": (None, [["ks08", "0", "*", "Slept the child."], ["ks08", "1", "", "The child slept."]]),
        "test.tsv": (["index", "sentence"], [["0", "A cat sat."]]),
    },
    "SST-2": {
        "train.tsv": (["sentence", "label"], [["a warm , funny film ", "1"], ['dull "and long', "0"]]),
        "dev.tsv": (["sentence", "label"], [["it drags .", "0"]]),
        "test.tsv": (["index", "sentence"], [["0", "a small gem ."]]),
    },
    "MRPC": {
        "train.tsv": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                      [["1", "11", "12", "He left at noon.", "He departed at 12."],
                       ["0", "13", "14", "Sales rose 5%.", 'Sales "fell.']]),
        "dev.tsv": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                    [["0", "15", "16", "It rained.", "It was sunny."]]),
        "test.tsv": (["index", "#1 ID", "#2 ID", "#1 String", "#2 String"], [["0", "17", "18", "A b.", "B a."]]),
    },
    "STS-B": {
        "train.tsv": (["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                       "sentence2", "score"],
                      [["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A man runs.",
                        "A person runs.", "4.200"]]),
        "dev.tsv": (["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                     "sentence2", "score"],
                    [["0", "main-news", "headlines", "2015", "0002", "none", "none", "Cat sleeps.", "Dog eats.",
                      "0.500"]]),
        "test.tsv": (["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                      "sentence2"], [["0", "main-news", "headlines", "2016", "0003", "none", "none", "X.", "Y."]]),
    },
    "QQP": {
        "train.tsv": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                      [["1", "2", "3", "How do I cook rice?", "How to cook rice?", "1"],
                       ["4", "5", "6", "Why is the sky blue?", "What is 2+2?", "0"]]),
        "dev.tsv": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    [["7", "8", "9", "Is tea good?", "Is tea healthy?", "1"]]),
        "test.tsv": (["id", "question1", "question2"], [["0", "Q one?", "Q two?"]]),
    },
    "QNLI": {
        "train.tsv": (["index", "question", "sentence", "label"],
                      [["0", "Who wrote it?", "It was written by Ann.", "entailment"],
                       ["1", "When?", "The sky is blue.", "not_entailment"]]),
        "dev.tsv": (["index", "question", "sentence", "label"], [["0", "Where?", "In Rome.", "entailment"]]),
        "test.tsv": (["index", "question", "sentence"], [["0", "What?", "Nothing."]]),
    },
    "RTE": {
        "train.tsv": (["index", "sentence1", "sentence2", "label"],
                      [["0", "Ann bought a car.", "Ann owns a car.", "entailment"],
                       ["1", "Bob slept.", "Bob ran a marathon.", "not_entailment"]]),
        "dev.tsv": (["index", "sentence1", "sentence2", "label"],
                    [["0", "It is hot.", "It is cold.", "not_entailment"]]),
        "test.tsv": (["index", "sentence1", "sentence2"], [["0", "A.", "B."]]),
    },
    "WNLI": {
        "train.tsv": (["index", "sentence1", "sentence2", "label"],
                      [["0", "The cup fell because it was loose.", "The cup was loose.", "1"]]),
        "dev.tsv": (["index", "sentence1", "sentence2", "label"],
                    [["0", "Tom hit Jim because he was angry.", "Jim was angry.", "0"]]),
        "test.tsv": (["index", "sentence1", "sentence2"], [["0", "A.", "B."]]),
    },
}
_MNLI_COLS = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]


def _mnli_row(i: int, s1: str, s2: str, labels: list[str]) -> list[str]:
    return [str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, *labels]


_GLUE["MNLI"] = {
    "train.tsv": (_MNLI_COLS + ["label1", "gold_label"],
                  [_mnli_row(0, "A man eats.", "Someone eats.", ["entailment", "entailment"]),
                   _mnli_row(1, "A man eats.", "Nobody eats.", ["contradiction", "contradiction"])]),
    "dev_matched.tsv": (_MNLI_COLS + [f"label{k}" for k in range(1, 6)] + ["gold_label"],
                        [_mnli_row(2, "Kids play.", "Kids are outside.", ["neutral"] * 6)]),
    "dev_mismatched.tsv": (_MNLI_COLS + [f"label{k}" for k in range(1, 6)] + ["gold_label"],
                           [_mnli_row(3, "Rain fell.", "It was dry.", ["contradiction"] * 6),
                            _mnli_row(4, "Rain fell.", "It was wet.", ["entailment"] * 6)]),
    "test_matched.tsv": (_MNLI_COLS, [_mnli_row(5, "A.", "B.", [])]),
    "test_mismatched.tsv": (_MNLI_COLS, [_mnli_row(6, "C.", "D.", [])]),
}

GLUE = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli"]
ADVGLUE = [f"advglue-{t}" for t in ("sst2", "qqp", "mnli", "mnli-mm", "qnli", "rte")]
OWNED = GLUE + ["squad", "squad-v2", "paws", "imdb", "hans"] + ADVGLUE + ["wikitext-103", "wikitext-2", "lambada"]

EXPECTED = {  # task -> split -> labels
    "cola": {"train": [1, 0], "validation": [0, 1], "test": [-1]},
    "sst2": {"train": [1, 0], "validation": [0], "test": [-1]},
    "mrpc": {"train": [1, 0], "validation": [0], "test": [-1]},
    "stsb": {"train": [4.2], "validation": [0.5], "test": [None]},
    "qqp": {"train": [1, 0], "validation": [1], "test": [-1]},
    "mnli": {"train": [0, 2], "validation": [1], "test": [-1]},
    "mnli-mm": {"validation": [2, 0], "test": [-1]},  # eval_only: scored with the MNLI models
    "qnli": {"train": [0, 1], "validation": [0], "test": [-1]},
    "rte": {"train": [0, 1], "validation": [1], "test": [-1]},
    "wnli": {"train": [1], "validation": [0], "test": [-1]},
    "paws": {"validation": [1, 0]},
    "hans": {"validation": [0, 1, 1]},
    "imdb": {"test": [0, 1, 1]},
    "advglue-sst2": {"validation": [1]},
    "advglue-qqp": {"validation": [0]},
    "advglue-mnli": {"validation": [2]},
    "advglue-mnli-mm": {"validation": [1]},
    "advglue-qnli": {"validation": [1]},
    "advglue-rte": {"validation": [0]},
}

WIKITEXT = (" \n = Alpha = \n \n Alpha is a letter . \n \n = = History = = \n \n It is old . \n \n"
            " = Beta = \n \n Beta follows \" Alpha . \n")
WIKITEXT_DOCS = [" = Alpha = \n Alpha is a letter . \n = = History = = \n It is old . \n",
                 " = Beta = \n Beta follows \" Alpha . \n"]


def write_tsv(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + rows
    path.write_text("".join("\t".join(r) + "\n" for r in lines), encoding="utf-8")


def write_glue(root: Path) -> Path:
    for subdir, files in _GLUE.items():
        for name, (header, rows) in files.items():
            write_tsv(root / subdir / name, header, rows)
    return root


def squad_v1() -> dict:
    return {"version": "1.1", "data": [{"title": "Rivers", "paragraphs": [
        {"context": "The Nile is long. The Amazon is wide.",
         "qas": [{"id": "q1", "question": "Which river is long?",
                  "answers": [{"text": "The Nile", "answer_start": 0}, {"text": "Nile", "answer_start": 4}]},
                 {"id": "q2", "question": "Which is wide?", "answers": [{"text": "Amazon", "answer_start": 22}]}]}]}]}


def squad_v2() -> dict:
    doc = squad_v1()
    doc["version"] = "v2.0"
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    for qa in qas:
        qa["is_impossible"] = False
    qas.append({"id": "q3", "question": "Which river is blue?", "answers": [], "is_impossible": True,
                "plausible_answers": [{"text": "The Amazon", "answer_start": 18}]})
    return doc


def write_all(root: Path) -> dict[str, Path]:
    """Every official layout under `root`; returns {task: --data-dir}."""
    dirs = {t: write_glue(root / "glue_data") for t in
            ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli")}
    squad = root / "squad"
    squad.mkdir()
    for split, name in (("train", "train"), ("validation", "dev")):
        (squad / f"{name}-v1.1.json").write_text(json.dumps(squad_v1()), encoding="utf-8")
        (squad / f"{name}-v2.0.json").write_text(json.dumps(squad_v2(), indent=1), encoding="utf-8")
    dirs["squad"] = dirs["squad-v2"] = squad
    for size in ("103", "2"):
        wt = root / f"wikitext{size}" / f"wikitext-{size}-raw"
        wt.mkdir(parents=True)
        for split in ("train", "valid", "test"):
            (wt / f"wiki.{split}.raw").write_text(WIKITEXT, encoding="utf-8")
        dirs[f"wikitext-{size}"] = wt.parent
    dirs["lambada"] = root / "lambada"
    dirs["lambada"].mkdir()
    (dirs["lambada"] / "lambada_test.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["She opened the door and saw her dog",
                                                         "He paid the bill \"in cash"]), encoding="utf-8")
    dirs["paws"] = root / "paws"
    write_tsv(dirs["paws"] / "final" / "dev.tsv", ["id", "sentence1", "sentence2", "label"],
              [["1", "A is in B .", "B contains A .", "1"], ["2", "A beat B .", "B beat A .", "0"]])
    dirs["hans"] = root / "hans"
    write_tsv(dirs["hans"] / "heuristics_evaluation_set.txt",
              ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
               "sentence2_parse", "sentence1", "sentence2", "pairID", "heuristic", "subcase", "template"],
              [["entailment", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "The doctor saw the lawyer .",
                "The doctor saw the lawyer .", "ex0", "lexical_overlap", "ln_subject/object_swap", "temp1"],
               ["non-entailment", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "The doctor saw the lawyer .",
                "The lawyer saw the doctor .", "ex1", "lexical_overlap", "ln_subject/object_swap", "temp1"],
               ["non-entailment", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "If the cat ran , the dog slept .",
                "The cat ran .", "ex2", "constituent", "cn_embedded_under_if", "temp2"]])
    dirs["imdb"] = root / "imdb"
    for label, reviews in (("neg", ["Dull.<br /><br />Awful."]), ("pos", ["Loved it.", "A \"great film"])):
        d = dirs["imdb"] / "aclImdb" / "test" / label
        d.mkdir(parents=True)
        for i, text in enumerate(reviews):
            (d / f"{i}_{9 if label == 'pos' else 2}.txt").write_text(text, encoding="utf-8")
    dirs["advglue"] = root / "advglue"
    (dirs["advglue"] / "dev").mkdir(parents=True)
    (dirs["advglue"] / "dev" / "dev.json").write_text(json.dumps({
        "sst2": [{"idx": 0, "label": 1, "sentence": "a grate film"}],
        "qqp": [{"idx": 0, "label": 0, "question1": "How to lern?", "question2": "Where to eat?"}],
        "mnli": [{"idx": 0, "label": 2, "premise": "It is dai.", "hypothesis": "It is night."}],
        "mnli-mm": [{"idx": 0, "label": 1, "premise": "Pepole talk.", "hypothesis": "They argue."}],
        "qnli": [{"idx": 0, "label": 1, "question": "Who won?", "sentence": "The game was lnog."}],
        "rte": [{"idx": 0, "label": 0, "sentence1": "Ann bougth a car.", "sentence2": "Ann has a car."}],
    }), encoding="utf-8")
    for name in ("sst2", "qqp", "mnli", "mnli-mm", "qnli", "rte"):
        dirs[f"advglue-{name}"] = dirs["advglue"]
    del dirs["advglue"]
    return dirs
