"""GLUE as the GLUE download script unpacks it (`glue_data/<TASK>/{train,dev,test}.tsv`), a few dozen rows each.

Formats follow the real files: CoLA's train/dev have no header (`source label mark sentence`), MNLI keeps its
parse columns and annotator labels (12 columns in train, 16 in dev, `gold_label` last; test_* have 10), QQP has
`id qid1 qid2 question1 question2 is_duplicate`, STS-B its 10 columns, MRPC `Quality #1 ID #2 ID #1 String #2
String`; every test.tsv has its header and no label. Labels are balanced; the text is real (`smoke.text`).
"""

from __future__ import annotations

import random

from kronbench.smoke import text as T

# GLUE file stem -> the corpus split its rows come from
_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
_COLA_SOURCES = ("gj04", "bc01", "ks08", "r-67", "c_13", "m_02", "w_80", "sks13")
_MNLI_GENRES = {"enwiki": ("fiction", "government", "slate", "telephone", "travel"),
                "news": ("facetoface", "letters", "nineeleven", "oup", "verbatim")}
_MNLI_COLS = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
_STSB_COLS = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]
_STSB_SOURCES = (("main-captions", "MSRvid", "2012test"), ("main-news", "headlines", "2013"),
                 ("main-forums", "deft-forum", "2014"), ("main-news", "answers-forums", "2015"))
NLI = ("entailment", "neutral", "contradiction")


def tsv(header: list[str] | None, rows: list[list[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in ([header] if header else []) + rows)


def pool(task: str, name: str, corpus: str = "enwiki") -> T.Pool:
    """The sentence pool of one file, seeded by task and file so every file is reproducible on its own."""
    return T.Pool(corpus, _SPLITS[name.split("_")[0]], random.Random(f"smoke:{task}:{name}:{T.SEED}"))


# ---------------------------------------------------------------------------- one example per label, per task
def cola_example(p: T.Pool, k: int) -> dict | None:
    _, a, _ = p.take()
    s = a if k else T.scramble(a, p.rng)
    return None if s is None else {"sentence": s, "label": str(k)}


def sst2_example(p: T.Pool, k: int) -> dict:
    return {"sentence": T.sst(p.take()[1]), "label": str(k)}  # labels are arbitrary here: no sentiment in the text


def paraphrase_example(p: T.Pool, k: int) -> dict:
    """1: a sentence and itself less one word; 0: a sentence and the one after it."""
    _, a, b = p.take()
    return {"sentence1": a, "sentence2": T.drop_word(a, p.rng) if k else b, "label": str(k)}


def question_pair_example(p: T.Pool, k: int) -> dict | None:
    """1: a cloze question and itself less one word; 0: questions made from two consecutive sentences."""
    _, a, b = p.take()
    qa, qb = T.question(a, p.rng), T.question(b, p.rng)
    if qa is None or (not k and qb is None):
        return None
    return {"question1": qa[0], "question2": T.drop_word(qa[0], p.rng) if k else qb[0], "label": str(k)}


def nli_example(p: T.Pool, k: int) -> dict:
    """entailment: the premise less a quarter; neutral: the next sentence; contradiction: another article's."""
    d, a, b = p.take()
    hyp = T.drop_span(a, p.rng) if k == 0 else b if k == 1 else p.other(d)
    return {"sentence1": a, "sentence2": hyp, "label": NLI[k]}


def qnli_example(p: T.Pool, k: int) -> dict | None:
    """entailment: the sentence the question was made from; not_entailment: the sentence after it."""
    _, a, b = p.take()
    q = T.question(a, p.rng)
    return None if q is None else {"question": q[0], "sentence": b if k else a,
                                   "label": ("entailment", "not_entailment")[k]}


def rte_example(p: T.Pool, k: int) -> dict:
    """Two sentences; entailment: the first less one word; not_entailment: a distant sentence of the article."""
    d, a, b = p.take()
    return {"sentence1": f"{a} {b}", "sentence2": p.far(d, a) if k else T.drop_word(a, p.rng),
            "label": ("entailment", "not_entailment")[k]}


def wnli_example(p: T.Pool, k: int) -> dict:
    """Label 1 = entailment (WNLI's 0/1): the second sentence less one word; 0: a distant sentence."""
    d, a, b = p.take()
    return {"sentence1": f"{a} {b}", "sentence2": T.drop_word(b, p.rng) if k else p.far(d, a), "label": str(k)}


def stsb_example(p: T.Pool, k: int) -> dict | None:
    """Grades 5..0 as kronbench.data.embedded.SIMILARITY_GRADES, minus a fraction (STS-B scores are averages)."""
    d, a, b = p.take()
    grade = 5 - k
    if len(a.split()) < 8:
        return None
    partner = (T.drop_word(a, p.rng) if grade == 5 else T.drop_span(a, p.rng) if grade == 4 else
               T.half(a, p.rng) if grade == 3 else b if grade == 2 else p.far(d, a) if grade == 1 else p.other(d))
    score = max(0.0, grade - p.rng.choice((0.0, 0.0, 0.2, 0.4, 0.6)))
    s1, s2 = (a, partner) if p.rng.random() < 0.5 else (partner, a)
    return {"sentence1": s1, "sentence2": s2, "label": f"{score:.3f}"}


# ------------------------------------------------------------------------------------------------ the files
def _sizes(rows: int, eval_rows: int) -> dict[str, int]:
    return {"train": rows, "dev": eval_rows, "test": eval_rows}


def cola(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    for name, n in _sizes(rows, eval_rows).items():
        ex = T.examples(n, cola_example, pool("cola", name), 2)
        if name == "test":
            out["test.tsv"] = tsv(["index", "sentence"], [[str(i), e["sentence"]] for i, e in enumerate(ex)])
        else:  # no header; the mark column holds "*" for unacceptable sentences
            out[f"{name}.tsv"] = tsv(None, [[_COLA_SOURCES[i % len(_COLA_SOURCES)], e["label"],
                                             "" if e["label"] == "1" else "*", e["sentence"]]
                                            for i, e in enumerate(ex)])
    return out


def sst2(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    for name, n in _sizes(rows, eval_rows).items():
        ex = T.examples(n, sst2_example, pool("sst2", name), 2)
        if name == "test":
            out["test.tsv"] = tsv(["index", "sentence"], [[str(i), e["sentence"]] for i, e in enumerate(ex)])
        else:  # train and dev sentences end with a space in the real files
            out[f"{name}.tsv"] = tsv(["sentence", "label"], [[e["sentence"] + " ", e["label"]] for e in ex])
    return out


def mrpc(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    for name, n in _sizes(rows, eval_rows).items():
        p = pool("mrpc", name)
        ex = T.examples(n, paraphrase_example, p, 2)
        ids = [(str(p.rng.randrange(1000, 3_500_000)), str(p.rng.randrange(1000, 3_500_000))) for _ in ex]
        first = ["index"] if name == "test" else ["Quality"]
        body = [[str(i) if name == "test" else e["label"], *ids[i], e["sentence1"], e["sentence2"]]
                for i, e in enumerate(ex)]
        out[f"{name}.tsv"] = tsv(first + ["#1 ID", "#2 ID", "#1 String", "#2 String"], body)
    return out


def qqp(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    base = 0
    for name, n in _sizes(rows, eval_rows).items():
        ex = T.examples(n, question_pair_example, pool("qqp", name), 2)
        if name == "test":
            out["test.tsv"] = tsv(["id", "question1", "question2"],
                                  [[str(i), e["question1"], e["question2"]] for i, e in enumerate(ex)])
            continue
        body = [[str(base + i), str(2 * (base + i) + 1), str(2 * (base + i) + 2), e["question1"], e["question2"],
                 e["label"]] for i, e in enumerate(ex)]
        base += n
        out[f"{name}.tsv"] = tsv(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], body)
    return out


def parses(s: str) -> tuple[str, str]:
    """A binary bracketing and a flat ROOT parse of `s`'s tokens, in the shape of MNLI's parse columns."""
    toks = T.ptb(s).split()
    binary = toks[-1]
    for t in reversed(toks[:-1]):
        binary = f"( {t} {binary} )"
    return binary, "(ROOT (S " + " ".join(f"(X {t})" for t in toks) + "))"


def mnli(rows: int, eval_rows: int) -> dict[str, str]:
    files = {"train": ("train", "enwiki", rows), "dev_matched": ("dev", "enwiki", eval_rows),
             "dev_mismatched": ("dev", "news", eval_rows), "test_matched": ("test", "enwiki", eval_rows),
             "test_mismatched": ("test", "news", eval_rows)}
    out = {}
    for name, (split, corpus, n) in files.items():
        p = pool("mnli", name, corpus)
        body = []
        for i, e in enumerate(T.examples(n, nli_example, p, 3)):
            prompt = p.rng.randrange(10_000, 150_000)
            (b1, p1), (b2, p2) = parses(e["sentence1"]), parses(e["sentence2"])
            cols = [str(i), str(prompt), f"{prompt}{e['label'][0]}", p.rng.choice(_MNLI_GENRES[corpus]),
                    b1, b2, p1, p2, e["sentence1"], e["sentence2"]]
            if split == "train":
                cols += [e["label"], e["label"]]  # label1 (the writer's) and gold_label
            elif split == "dev":  # five annotators, one of them sometimes disagreeing; gold = the majority
                votes = [e["label"]] * 5
                if p.rng.random() < 0.4:
                    votes[p.rng.randrange(1, 5)] = p.rng.choice([x for x in NLI if x != e["label"]])
                cols += votes + [e["label"]]
            body.append(cols)
        header = _MNLI_COLS + (["label1", "gold_label"] if split == "train" else
                               [f"label{i}" for i in range(1, 6)] + ["gold_label"] if split == "dev" else [])
        out[f"{name}.tsv"] = tsv(header, body)
    return out


def _indexed(task: str, make, classes: int, cols: list[str], rows: int, eval_rows: int) -> dict[str, str]:
    """`index <cols> label` files (QNLI, RTE, WNLI); test.tsv without the label."""
    out = {}
    for name, n in _sizes(rows, eval_rows).items():
        ex = T.examples(n, make, pool(task, name), classes)
        label = [] if name == "test" else ["label"]
        out[f"{name}.tsv"] = tsv(["index", *cols, *label],
                                 [[str(i), *(e[c] for c in cols), *(e[c] for c in label)] for i, e in enumerate(ex)])
    return out


def qnli(rows: int, eval_rows: int) -> dict[str, str]:
    return _indexed("qnli", qnli_example, 2, ["question", "sentence"], rows, eval_rows)


def rte(rows: int, eval_rows: int) -> dict[str, str]:
    return _indexed("rte", rte_example, 2, ["sentence1", "sentence2"], rows, eval_rows)


def wnli(rows: int, eval_rows: int) -> dict[str, str]:
    return _indexed("wnli", wnli_example, 2, ["sentence1", "sentence2"], rows, eval_rows)


def stsb(rows: int, eval_rows: int) -> dict[str, str]:
    out = {}
    for name, n in _sizes(rows, eval_rows).items():
        p = pool("stsb", name)
        body = []
        for i, e in enumerate(T.examples(n, stsb_example, p, 6)):
            genre, filename, year = p.rng.choice(_STSB_SOURCES)
            cols = [str(i), genre, filename, year, f"{p.rng.randrange(10_000):04d}", "none", "none",
                    e["sentence1"], e["sentence2"]]
            body.append(cols if name == "test" else cols + [e["label"]])
        out[f"{name}.tsv"] = tsv(_STSB_COLS + ([] if name == "test" else ["score"]), body)
    return out


# glue_data subdirectory -> its files
UNITS = {"CoLA": cola, "SST-2": sst2, "MRPC": mrpc, "STS-B": stsb, "QQP": qqp, "MNLI": mnli, "QNLI": qnli,
         "RTE": rte, "WNLI": wnli}
