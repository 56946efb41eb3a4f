"""Real sentences for the smoke data sets, and the small edits that turn them into labelled examples.

Text comes from the embedded corpora (`kronbench.data.corpora`: Wikipedia articles and Lee news stories shipped
in gensim), split by article exactly as the embedded tasks split them, so a smoke train split never shares an
article with a smoke validation or test split. The labels are synthetic (as in `kronbench.data.embedded`): real
text, constructed relations, enough for every reader, head and metric to run on rows that look like the real ones.
"""

from __future__ import annotations

import functools
import random
import re

from kronbench.data.corpora import Document, is_clean_sentence, load_corpus, split_documents
from kronbench.data.embedded import perturb_word_order
from kronbench.data.embedded_qa import cloze_question
from kronbench.errors import KronbenchError

SEED = 0
FRACTIONS = {  # the embedded tasks' article split for enwiki; news stories get a split of their own
    "enwiki": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "news": {"train": 0.5, "validation": 0.25, "test": 0.25},
}


@functools.cache
def documents(corpus: str, split: str) -> tuple[Document, ...]:
    return tuple(split_documents(load_corpus(corpus), FRACTIONS[corpus], SEED)[split])


@functools.cache
def _pairs(corpus: str, split: str) -> tuple[tuple[int, str, str], ...]:
    """(document index, sentence, next sentence) for consecutive clean sentences of one paragraph."""
    return tuple((d, p[i], p[i + 1]) for d, doc in enumerate(documents(corpus, split)) for p in doc.paragraphs
                 for i in range(len(p) - 1) if is_clean_sentence(p[i]) and is_clean_sentence(p[i + 1]))


class Pool:
    """Sentence pairs of one corpus split in an order drawn from `rng`, each handed out once."""

    def __init__(self, corpus: str, split: str, rng: random.Random):
        self.corpus, self.split, self.rng = corpus, split, rng
        self.docs = documents(corpus, split)
        self.pairs = list(_pairs(corpus, split))
        rng.shuffle(self.pairs)

    def take(self) -> tuple[int, str, str]:
        if not self.pairs:
            raise KronbenchError(f"the {self.split} articles of the embedded {self.corpus!r} corpus ran out of "
                                 f"sentence pairs; ask for fewer rows (--rows / --eval-rows)")
        return self.pairs.pop()

    def far(self, d: int, anchor: str) -> str:
        """A clean sentence of document `d` at least 3 sentences from `anchor`, else one of another document."""
        sents = [s for p in self.docs[d].paragraphs for s in p]
        i = sents.index(anchor)
        far = [s for j, s in enumerate(sents) if abs(j - i) >= 3 and is_clean_sentence(s)]
        return self.rng.choice(far) if far else self.other(d)

    def other(self, d: int) -> str:
        """A clean sentence of another document of the split."""
        while True:
            e = self.rng.randrange(len(self.docs))
            sents = [s for p in self.docs[e].paragraphs for s in p if is_clean_sentence(s)] if e != d else []
            if sents:
                return self.rng.choice(sents)


def examples(n: int, make, pool: Pool, classes: int) -> list[dict]:
    """`n` rows from `make(pool, k)` with k = 0, 1, ... cycling over `classes` (balanced; `make` returns None to
    skip an anchor), shuffled."""
    rows: list[dict] = []
    while len(rows) < n:
        row = make(pool, len(rows) % classes)
        if row is not None:
            rows.append(row)
    pool.rng.shuffle(rows)
    return rows


# ------------------------------------------------------------------------------------------------------ edits
def drop_word(s: str, rng: random.Random) -> str:
    """`s` without one word, never the first or the last."""
    w = s.split()
    i = rng.randrange(1, len(w) - 1)
    return " ".join(w[:i] + w[i + 1:])


def drop_span(s: str, rng: random.Random) -> str:
    """`s` without a contiguous quarter of its words (never the first)."""
    w = s.split()
    k = max(2, round(len(w) / 4))
    i = rng.randrange(1, len(w) - k + 1)
    return " ".join(w[:i] + w[i + k:])


def half(s: str, rng: random.Random) -> str:
    w = s.split()
    return " ".join(w[:len(w) // 2] if rng.random() < 0.5 else w[len(w) // 2:])


def scramble(s: str, rng: random.Random) -> str | None:
    """Local word-order errors (the embedded acceptability edit); None if it left `s` unchanged."""
    out = perturb_word_order(s, rng)
    return out if out != s else None


def swap_names(s: str) -> str | None:
    """`s` with its first two distinct capitalized words (not the first word) exchanged; None if it has fewer."""
    w = s.split()
    idx = [i for i in range(1, len(w)) if re.fullmatch(r"[A-Z][a-z]+", w[i])]
    for j in idx[1:]:
        if w[j] != w[idx[0]]:
            w[idx[0]], w[j] = w[j], w[idx[0]]
            return " ".join(w)
    return None


def typo(s: str, rng: random.Random) -> str:
    """AdvGLUE-style word-level typo: two inner letters of one word of 4+ letters exchanged."""
    w = s.split()
    cand = [i for i, x in enumerate(w) if re.fullmatch(r"[A-Za-z]{4,}", x) and x[1:-1] != x[1:-1][::-1]]
    if not cand:
        return s
    i = rng.choice(cand)
    x = w[i]
    for _ in range(10):  # find a swap that changes the word ("seed" swapped at "ee" would not)
        j = rng.randrange(1, len(x) - 2)
        y = x[:j] + x[j + 1] + x[j] + x[j + 2:]
        if y != x:
            w[i] = y
            break
    return " ".join(w)


def question(s: str, rng: random.Random) -> tuple[str, str, int] | None:
    """A cloze question made from `s`: (question, answer, answer offset in `s`), or None (embedded_qa)."""
    return cloze_question(s, rng)


# --------------------------------------------------------------------------------------------- tokenizations
_PUNCT = re.compile(r"([,;:()\[\]\"]|[.!?](?=[\"')\]]*$))")


def ptb(s: str) -> str:
    """Penn-Treebank-like tokens as in SST-2, PAWS, HANS and WikiText: punctuation, quotes, brackets and the
    clitics 's / n't stand apart (a period only at the end: "U.S." stays one token)."""
    s = re.sub(r"(\w)n't\b", r"\1 n't", s)
    s = re.sub(r"(\w)'(s|re|ve|ll|d|m)\b", r"\1 '\2", s)
    return " ".join(_PUNCT.sub(r" \1 ", s).split())


def wikitext(s: str) -> str:
    """WikiText's tokens: `ptb` plus @-@ for an inner hyphen, @,@ for a thousands comma and @.@ for a decimal
    point ("role @-@ playing", "1 @,@ 000", "3 @.@ 5")."""
    s = re.sub(r"(?<=\d),(?=\d{3})", " \x00c ", s)
    s = re.sub(r"(?<=\d)\.(?=\d)", " \x00p ", s)
    s = re.sub(r"(?<=\w)-(?=\w)", " \x00h ", s)
    return ptb(s).replace("\x00c", "@,@").replace("\x00p", "@.@").replace("\x00h", "@-@")


def sst(s: str) -> str:
    """SST-2's form: lower-cased `ptb` tokens, brackets as -lrb- / -rrb-."""
    return ptb(s).lower().replace("(", "-lrb-").replace(")", "-rrb-")
