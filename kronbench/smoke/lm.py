"""The LM sets as the official downloads unpack: WikiText raw (`wikitext-{103,2}-raw/wiki.{train,valid,test}.raw`)
and LAMBADA (`lambada_test.jsonl`, one {"text": ...} per line).

WikiText: real Wikipedia articles with their section structure, re-read from the gensim dump because the
embedded corpus drops headings. Raw-file conventions: every line starts with a space and ends with " \\n",
blank lines are " \\n", headings are ` = Title = `, ` = = Section = = `, ` = = = Sub = = = ` with a blank line
around them, paragraphs follow each other without one, tokens are split off (`smoke.text.wikitext`: "role @-@
playing", "1 @,@ 000"). As in the real data, WikiText-2 shares WikiText-103's valid and test files and its train
articles are a subset of WikiText-103's. The test file holds a few thousand words: several 1024-token windows.

LAMBADA: passages of 3-5 consecutive news sentences, the last one without its final punctuation, so the passage
ends with the word to predict, as OpenAI's detokenized file does.
"""

from __future__ import annotations

import bz2
import functools
import itertools
import json
import random
import re

from kronbench.data.corpora import clean_text, corpus_path
from kronbench.errors import KronbenchError
from kronbench.smoke import text as T

MIN_ARTICLE_WORDS = 800  # an article shorter than this is not used: the test file must fill several windows
MAX_ARTICLE_WORDS = 1500  # longer articles are cut at a paragraph
_HEADING = re.compile(r"(={2,})\s*([^=].*?)\s*\1\s*$")


def articles_per_split(rows: int, eval_rows: int) -> dict[str, int]:
    """Articles in each WikiText-103 file (WikiText-2's train file has half of train's, at least one). Capped: the
    embedded dump has 103 articles with prose, about 9 of them long enough in each of validation and test."""
    n_eval = min(6, max(2, eval_rows // 6))
    return {"train": min(24, max(2, rows // 5)), "validation": n_eval, "test": n_eval}


@functools.cache
def _markup() -> dict[str, str]:
    """title -> raw wiki markup of every page of the embedded dump (the corpus keeps prose only)."""
    from gensim.corpora.wikicorpus import extract_pages

    with bz2.open(corpus_path("enwiki")) as f:
        return {title: markup for title, markup, _ in extract_pages(f)}


def article(title: str) -> tuple[str, int]:
    """One article in raw WikiText form (no leading blank line) and its word count."""
    from gensim.corpora.wikicorpus import filter_wiki

    sections: list[tuple[int, str, list[str]]] = [(1, title, [])]
    words = 0
    for line in filter_wiki(_markup()[title]).split("\n"):  # filtered here, only for the articles looked at
        m = _HEADING.match(line)
        if m:
            sections.append((len(m.group(1)), m.group(2), []))
        elif re.match(r"[A-Za-z0-9\"']", line) and len(line.split()) >= 8 and words < MAX_ARTICLE_WORDS:
            # the corpus's prose test (kronbench.data.corpora); lists, tables and captions fail it
            para = T.wikitext(clean_text(line))
            sections[-1][2].append(para)
            words += len(para.split())
    out = []
    for level, name, paras in sections:
        if level == 1 or paras:  # a heading without prose of its own is left out
            marks = " ".join("=" * level)
            out.append(("" if level == 1 else " \n") + f" {marks} {T.wikitext(name)} {marks} \n \n")
            out.extend(f" {p} \n" for p in paras)
    return "".join(out), words


def _pick(split: str, k: int) -> list[str]:
    """`k` articles of the split with at least MIN_ARTICLE_WORDS words, in an order drawn by seed."""
    titles = [d.title for d in T.documents("enwiki", split)]
    random.Random(f"smoke:wikitext:{split}:{T.SEED}").shuffle(titles)
    long_enough = (text for text, words in map(article, titles) if words >= MIN_ARTICLE_WORDS)
    texts = list(itertools.islice(long_enough, k))
    if len(texts) < k:
        raise KronbenchError(f"smoke wikitext: {k} articles asked for in {split}, the embedded corpus has "
                             f"{len(texts)} long enough; ask for fewer rows")
    return texts


def raw_file(texts: list[str]) -> str:
    """Articles joined as in the raw files: a blank line first, between articles and at the end."""
    return " \n" + " \n".join(texts) + " \n"


def wikitext(rows: int, eval_rows: int) -> dict[str, dict[str, str]]:
    """{"wikitext-103-raw": files, "wikitext-2-raw": files}."""
    k = articles_per_split(rows, eval_rows)
    picked = {split: _pick(split, n) for split, n in k.items()}
    shared = {"wiki.valid.raw": raw_file(picked["validation"]), "wiki.test.raw": raw_file(picked["test"])}
    return {"wikitext-103-raw": {"wiki.train.raw": raw_file(picked["train"]), **shared},
            "wikitext-2-raw": {"wiki.train.raw": raw_file(picked["train"][:max(1, k["train"] // 2)]), **shared}}


def lambada(eval_rows: int) -> str:
    rng = random.Random(f"smoke:lambada:{T.SEED}")
    docs = list(T.documents("news", "test"))
    rng.shuffle(docs)
    passages = []
    for doc in docs:
        sents = [s for p in doc.paragraphs for s in p]
        i = 0
        while i + 3 <= len(sents) and len(passages) < eval_rows:
            n = rng.randint(3, 5)
            chunk = sents[i:i + n]
            last = re.sub(r"[.!?][\"')\]]*$", "", chunk[-1]).rstrip()
            if re.search(r"[A-Za-z]$", last):  # the passage must end with a word to predict
                passages.append(" ".join(chunk[:-1] + [last]))
            i += n
    if len(passages) < eval_rows:
        raise KronbenchError(f"smoke lambada: only {len(passages)} passages in the news test stories; "
                             f"ask for fewer --eval-rows")
    return "".join(json.dumps({"text": p}) + "\n" for p in passages)
