"""The embedded task suite: GLUE-, SQuAD- and LM-shaped tasks built at run time from real text (see `corpora`).

`build(builder, **params)` returns `{split: [row, ...]}` in the canonical columns of the task kind, e.g.
`build("pair", corpus="enwiki", seed=0, max_train=4000, max_eval=500)`. The `sources.embedded` entry of each
`data/tasks/embedded-*.yaml` record holds exactly these arguments.

Why these constructions: each mirrors one GLUE/SQuAD/LM shape so every head and metric runs offline on CPU, on
real Wikipedia/news text, while staying learnable by a small pretrained encoder in minutes. They are synthetic
labels on real text, not human judgements: compare models on them, never with GLUE numbers.

Determinism: every random choice comes from `random.Random(<string>)`, which Python seeds through SHA-512, so the
rows are identical on every machine and under any PYTHONHASHSEED for the same gensim wheel.
"""

from __future__ import annotations

import inspect
import random

from kronbench.data.corpora import Document, is_clean_sentence, load_corpus, split_documents
from kronbench.data.embedded_qa import build_qa
from kronbench.errors import KronbenchError

DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def build(builder: str, *, corpus: str = "enwiki", seed: int = 0, fractions: dict[str, float] | None = None,
          max_train: int | None = None, max_eval: int | None = None, **task_params) -> dict[str, list[dict]]:
    """Rows per split for one embedded task.

    Documents are split at article level (`split_documents`); each split's rows come from its own documents and its
    own `Random(f"{builder}:{corpus}:{split}:{seed}")`. Builders emit labels in a balanced cycle, so capping at
    `max_train` (train) or `max_eval` (validation/test) keeps the classes balanced; rows are shuffled after capping.
    """
    if builder not in BUILDERS:
        raise KronbenchError(f"unknown embedded builder {builder!r}; valid builders: {', '.join(BUILDERS)}")
    fn = BUILDERS[builder]
    allowed = list(inspect.signature(fn).parameters)[2:]
    unknown = sorted(set(task_params) - set(allowed))
    if unknown:
        raise KronbenchError(f"embedded builder {builder!r} got unknown params {unknown}; it takes corpus, seed, "
                             f"fractions, max_train, max_eval{''.join(', ' + a for a in allowed)}")
    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    if abs(sum(fractions.values()) - 1) > 1e-6 or not set(fractions) <= set(DEFAULT_FRACTIONS):
        raise KronbenchError(f"fractions must map train/validation/test to shares summing to 1, got {fractions}")
    fractions = {s: fractions.get(s, 0.0) for s in DEFAULT_FRACTIONS}  # canonical order: same cut for every task
    out = {}
    for split, docs in split_documents(load_corpus(corpus), fractions, seed).items():
        rng = random.Random(f"{builder}:{corpus}:{split}:{seed}")
        rows = fn(docs, rng, **task_params)
        cap = max_train if split == "train" else max_eval
        rows = rows[:cap] if cap is not None else rows
        rng.shuffle(rows)
        out[split] = rows
    return out


# ------------------------------------------------------------------------------------------------ sentence helpers
def _clean_sentences(doc: Document) -> list[str]:
    return [s for p in doc.paragraphs for s in p if is_clean_sentence(s)]


def _next_pairs(docs: list[Document]) -> list[tuple[int, str, str]]:
    """(doc index, s_i, s_i+1) for consecutive clean sentences of one paragraph."""
    return [(d, p[i], p[i + 1]) for d, doc in enumerate(docs) for p in doc.paragraphs for i in range(len(p) - 1)
            if is_clean_sentence(p[i]) and is_clean_sentence(p[i + 1])]


def _same_article(doc: Document, anchor: str, rng: random.Random, gap: int = 3) -> str | None:
    """A clean sentence of `doc` at least `gap` sentences away from `anchor` (same topic, no continuity)."""
    sents = [s for p in doc.paragraphs for s in p]
    i = sents.index(anchor)
    far = [s for j, s in enumerate(sents) if abs(j - i) >= gap and is_clean_sentence(s)]
    return rng.choice(far) if far else None


def _other_article(docs: list[Document], d: int, rng: random.Random) -> str:
    """A clean sentence from a document of the same split other than docs[d] (different topic)."""
    while True:
        e = rng.randrange(len(docs))
        sents = _clean_sentences(docs[e]) if e != d else []
        if sents:
            return rng.choice(sents)


# ------------------------------------------------------------------------------------------------------- builders
def build_pair(docs: list[Document], rng: random.Random, hard_fraction: float = 0.5) -> list[dict]:
    """Next-sentence pairs, labels 0 not_next / 1 next, alternating.

    Positive: (s_i, s_i+1), consecutive in one paragraph. Negative: s_i with a sentence of the same article at
    least 3 sentences away (probability `hard_fraction`: same topic, so only discourse continuity tells them apart)
    or from another article of the split (topic alone tells).
    """
    anchors = _next_pairs(docs)
    rng.shuffle(anchors)
    rows = []
    for k, (d, a, b) in enumerate(anchors):
        if k % 2 == 0:
            b = (rng.random() < hard_fraction and _same_article(docs[d], a, rng)) or _other_article(docs, d, rng)
        rows.append({"sentence1": a, "sentence2": b, "label": int(k % 2 == 1)})
    return rows


def perturb_word_order(sentence: str, rng: random.Random, perturbations: int = 2) -> str:
    """Apply `perturbations` local word-order changes, each a swap of two adjacent words or a rotation of a 3-word
    window (probability 1/2 each). The first word (its capital would give the change away to a cased model) and
    the last (it carries the final punctuation) never move. Returns the sentence unchanged only if ten attempts
    all left it identical (e.g. 'the the')."""
    words = sentence.split()
    for _ in range(10):
        w = list(words)
        for _ in range(perturbations):
            if rng.random() < 0.5 or len(w) < 5:
                i = rng.randrange(1, len(w) - 2)
                w[i], w[i + 1] = w[i + 1], w[i]
            else:
                i = rng.randrange(1, len(w) - 3)
                w[i:i + 3] = w[i + 1:i + 3] + w[i:i + 1]
        if w != words:
            return " ".join(w)
    return sentence


def build_acceptability(docs: list[Document], rng: random.Random, perturbations: int = 2) -> list[dict]:
    """Single sentences, labels 0 unacceptable / 1 acceptable, alternating: the original sentence, or another
    sentence with `perturbations` local word-order changes. Each source sentence appears once, so no pair of
    rows gives the change away."""
    sents = [s for doc in docs for s in _clean_sentences(doc)]
    rng.shuffle(sents)
    rows = []
    for s in sents:
        label = len(rows) % 2
        text = s if label else perturb_word_order(s, rng, perturbations)
        if text != s or label:
            rows.append({"sentence": text, "label": label})
    return rows


# STS-B annotation scale (Agirre et al. 2016) and the construction standing in for each grade.
SIMILARITY_GRADES = {
    5: "equivalent: the sentence with one word (neither the first nor the last) deleted",
    4: "mostly equivalent, minor details differ: a quarter of the words deleted as one contiguous span",
    3: "roughly equivalent, important information missing: the first or second half of the sentence",
    2: "not equivalent, share some details: the next sentence of the same paragraph",
    1: "not equivalent, same topic: a sentence of the same article at least 3 sentences away",
    0: "different topics: a sentence of another article",
}


def _shortened(a: str, grade: int, rng: random.Random) -> str:
    """The grade 3-5 partner of `a`: `a` with words deleted (the first word always stays at grades 4 and 5, the last
    at grade 5)."""
    w = a.split()
    if grade == 5:
        i = rng.randrange(1, len(w) - 1)
        return " ".join(w[:i] + w[i + 1:])
    if grade == 4:
        k = max(2, round(len(w) / 4))
        i = rng.randrange(1, len(w) - k + 1)
        return " ".join(w[:i] + w[i + k:])
    half = len(w) // 2
    return " ".join(w[:half] if rng.random() < 0.5 else w[half:])


def build_similarity(docs: list[Document], rng: random.Random) -> list[dict]:
    """Sentence pairs graded 0-5 as in `SIMILARITY_GRADES`, the six grades cycling (an anchor whose article has no
    sentence 3 away is skipped at grade 1); sentence order is randomized because similarity is symmetric (otherwise
    'sentence2 is shorter' would be a free cue)."""
    anchors = [x for x in _next_pairs(docs) if len(x[1].split()) >= 8]
    rng.shuffle(anchors)
    rows = []
    for d, a, nxt in anchors:
        grade = 5 - len(rows) % 6
        if grade >= 3:
            b = _shortened(a, grade, rng)
        elif grade == 2:
            b = nxt
        elif grade == 1:
            b = _same_article(docs[d], a, rng)
        else:
            b = _other_article(docs, d, rng)
        if b is not None:
            pair = (a, b) if rng.random() < 0.5 else (b, a)
            rows.append({"sentence1": pair[0], "sentence2": pair[1], "label": float(grade)})
    return rows


def build_lm(docs: list[Document], rng: random.Random) -> list[dict]:
    """One document per row: prose paragraphs separated by blank lines (headings, lists and tables dropped)."""
    return [{"text": doc.text} for doc in docs]


BUILDERS = {
    "pair": build_pair,
    "acceptability": build_acceptability,
    "similarity": build_similarity,
    "qa": build_qa,
    "lm": build_lm,
}
