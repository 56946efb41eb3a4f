"""Real text that ships inside the gensim wheel, cleaned and split into sentences, for the offline task suite.

Two corpora, both read from `gensim/test/test_data/` so nothing is downloaded:
- `enwiki`: `enwiki-latest-pages-articles1...-shortened.bz2`, 206 pages of which 106 are not redirects and 103 have
  prose once lists, tables and headings are dropped (2.57 M chars, 18.5 K sentences; CC BY-SA 3.0 / GFDL).
- `news`: `lee_background.cor`, 300 Australian news stories of 2001, one per line (0.36 M chars, 2.7 K sentences).

Sentence splitting is a small rule-based splitter (no nltk data to download). It misses some boundaries (a period
followed by a lower-case word, an abbreviation not listed) but is stable: the same text always gives the same
sentences, which is what the task builders need.
"""

from __future__ import annotations

import bz2
import functools
import importlib.util
import os
import random
import re
from dataclasses import dataclass

from kronbench.errors import KronbenchError

CORPUS_FILES = {
    "enwiki": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "news": "lee_background.cor",
}


@dataclass(frozen=True)
class Document:
    """One article (enwiki) or story (news): cleaned sentences grouped by paragraph."""

    title: str
    paragraphs: tuple[tuple[str, ...], ...]

    @property
    def text(self) -> str:
        """Plain text: sentences joined by a space, paragraphs by a blank line (WikiText-like, no headings)."""
        return "\n\n".join(" ".join(p) for p in self.paragraphs)


def corpus_path(corpus: str) -> str:
    """Path of a corpus file inside the installed gensim wheel, found with `find_spec` so that a missing gensim
    gives an install hint instead of an ImportError deep in a builder."""
    if corpus not in CORPUS_FILES:
        raise KronbenchError(f"unknown corpus {corpus!r}; valid corpora: {', '.join(CORPUS_FILES)}")
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise KronbenchError("the embedded tasks read real text shipped with gensim: `pip install gensim`")
    path = os.path.join(os.path.dirname(spec.origin), "test", "test_data", CORPUS_FILES[corpus])
    if not os.path.exists(path):
        raise KronbenchError(f"gensim is installed but lacks {path}; reinstall it with `pip install gensim`")
    return path


@functools.lru_cache(maxsize=None)
def load_corpus(corpus: str) -> tuple[Document, ...]:
    """All documents of a corpus in file order, cached per process (enwiki: ~3 s with the gensim import)."""
    path = corpus_path(corpus)
    if corpus == "news":
        with open(path, encoding="utf-8") as f:
            raw = [(f"news-{i:03d}", [line]) for i, line in enumerate(f) if line.strip()]
    else:
        raw = list(_wiki_articles(path))
    docs = [Document(title, _sentences_by_paragraph(paragraphs)) for title, paragraphs in raw]
    return tuple(d for d in docs if d.paragraphs)


def _wiki_articles(path: str):
    """(title, prose paragraphs) per article; redirects, list items, tables and headings are skipped."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    with bz2.open(path) as f:
        for title, markup, _pageid in extract_pages(f):
            text = filter_wiki(markup)
            if text.lstrip().upper().startswith("#REDIRECT"):
                continue
            # Prose lines start with a letter, digit or quote; '*', '#', ':', '=', '|', '{' and indented table
            # residue do not. Fewer than 8 words is a caption or a table cell, not a paragraph.
            yield title, [ln for ln in text.split("\n") if re.match(r"[A-Za-z0-9\"']", ln) and len(ln.split()) >= 8]


def _sentences_by_paragraph(paragraphs: list[str]) -> tuple[tuple[str, ...], ...]:
    out = (tuple(split_sentences(clean_text(p))) for p in paragraphs)
    return tuple(p for p in out if p)


def clean_text(text: str) -> str:
    """Undo what gensim's `filter_wiki` leaves behind: bold/italic quotes, empty parentheses of removed templates,
    spaces before punctuation, non-breaking spaces."""
    text = re.sub(r"'{2,}", "", text).replace("\xa0", " ")
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)  # "the Greek (, i.e." residue of a removed {{lang}} template
    text = re.sub(r"\(\s*[,;]\s*", "(", text)
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


# Words that end with a period without ending a sentence (compared lower-cased, without the period).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e cf ca c no nos vol pp fig ed eds al gen col lt sgt capt gov sen rep "
    "rev fr mt ft inc ltd co corp dept univ approx jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split at '.', '!' or '?' (plus closing quotes/brackets) followed by space and a capital or digit, unless the
    word before the period is a known abbreviation or an initial ("J.", "U.S.")."""
    sentences, start = [], 0
    for m in _BOUNDARY.finditer(text):
        word = text[start:m.start() + 1].split()[-1].lstrip("\"'([").rstrip(".").lower()
        if text[m.start()] == "." and (word in _ABBREVIATIONS or len(word) == 1 or "." in word):
            continue
        sentences.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    return sentences + [tail] if tail else sentences


_ARTIFACT = re.compile(r"[=|{}\[\]<>]|,\s*,|\(\s*\)|\s[,.;:]")


@functools.lru_cache(maxsize=None)
def is_clean_sentence(sentence: str, min_words: int = 6, max_words: int = 40) -> bool:
    """A well-formed prose sentence: 6-40 words, capitalized, ends with . ! or ?, balanced double quotes, no markup
    residue. It is the unit of the sentence-level tasks; QA contexts and LM text keep every sentence. Cached: the
    builders ask about the same sentences many times."""
    n = len(sentence.split())
    return (min_words <= n <= max_words and re.search(r"[.!?][\"')]?$", sentence) is not None
            and not _ARTIFACT.search(sentence) and sentence.lstrip('"')[:1].isupper() and sentence.count('"') % 2 == 0)


def split_documents(docs: tuple[Document, ...], fractions: dict[str, float], seed: int) -> dict[str, list[Document]]:
    """Article-level splits: shuffle documents with `seed`, then cut by cumulative character count so each split
    gets about its fraction of the text (articles vary from 0.5 K to 100 K chars, so counting articles would not).

    Every task of a corpus uses the same seed and fractions, so an article in one task's test split is in every
    task's test split, including the LM corpus a student may be pre-trained on.
    """
    order = list(range(len(docs)))
    random.Random(f"split:{seed}").shuffle(order)
    total = sum(len(d.text) for d in docs)
    splits: dict[str, list[Document]] = {name: [] for name, frac in fractions.items() if frac > 0}
    bounds, acc = [], 0.0
    for name, frac in fractions.items():
        acc += frac
        bounds.append((acc * total, name))
    seen = 0
    for i in order:
        # An article belongs to the split whose character range contains its midpoint.
        mid = seen + len(docs[i].text) / 2
        seen += len(docs[i].text)
        splits[next((name for b, name in bounds if mid <= b), bounds[-1][1])].append(docs[i])
    return splits
