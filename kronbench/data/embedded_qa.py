"""Cloze-style extractive QA in SQuAD v1.1 format, built from real paragraphs (the `qa` embedded builder).

A context is a run of consecutive sentences of one paragraph, at most `max_context_words` words (at 100, question
plus context fit 256 MiniLM tokens in all but 5 of 7158 examples: SQuAD's 384-token windows are not needed on CPU).
A question is one clean sentence of that context with an answer span replaced by a wh-phrase: a year -> "what
year", another number -> "what number", a capitalized name (never the first word) -> "what". Example: "The first
known use of this word was in what year?" -> "1539".

This is easier than SQuAD (the question copies its sentence), but the model must still align the question with
the right sentence and find the span boundaries (a multi-word name, a number with a thousands separator).
"""

from __future__ import annotations

import hashlib
import random
import re

from kronbench.data.corpora import Document, is_clean_sentence

_SPAN = re.compile(
    r"(?P<year>\b(?:1[0-9]{3}|20[0-9]{2})\b)"
    r"|(?P<number>\b[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?\b)"
    r"|(?<=[\s(\"])(?P<name>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*)"
)
_WH = {"year": "what year", "number": "what number", "name": "what"}


def _passages(paragraph: tuple[str, ...], max_words: int) -> list[list[str]]:
    """Greedy runs of consecutive sentences of at most `max_words` words; a longer sentence is dropped."""
    out, cur, n = [], [], 0
    for s in paragraph:
        w = len(s.split())
        if cur and n + w > max_words:
            out.append(cur)
            cur, n = [], 0
        if w <= max_words:
            cur, n = cur + [s], n + w
    return out + [cur] if cur else out


def cloze_question(sentence: str, rng: random.Random) -> tuple[str, str, int] | None:
    """(question, answer, answer offset in `sentence`), or None if the sentence has no year, number or name.

    The answer type is drawn first (uniformly over the types present), then one span of it, so years and numbers
    are not drowned by names.
    """
    spans: dict[str, list[re.Match]] = {}
    for m in _SPAN.finditer(sentence):
        spans.setdefault(m.lastgroup, []).append(m)
    if not spans:
        return None
    kind = rng.choice(sorted(spans))
    m = rng.choice(spans[kind])
    question = sentence[:m.start()] + _WH[kind] + sentence[m.end():]
    question = re.sub(r"[.!?][\"')]*$", "", question).rstrip() + "?"
    return question[0].upper() + question[1:], m.group(), m.start()


def build_qa(docs: list[Document], rng: random.Random, max_context_words: int = 100,
             questions_per_context: int = 2) -> list[dict]:
    """SQuAD-flat rows `id, title, context, question, answers={"text": [a], "answer_start": [i]}`, at most
    `questions_per_context` questions (from distinct sentences) per context. `id` is a hash of context and
    question, like SQuAD's hex ids."""
    rows = []
    for doc in docs:
        for paragraph in doc.paragraphs:
            for passage in _passages(paragraph, max_context_words):
                context = " ".join(passage)
                starts = [sum(len(s) + 1 for s in passage[:i]) for i in range(len(passage))]
                picks = [i for i, s in enumerate(passage) if is_clean_sentence(s)]
                for i in rng.sample(picks, min(questions_per_context, len(picks))):
                    qa = cloze_question(passage[i], rng)
                    if qa is None:
                        continue
                    question, answer, offset = qa
                    start = starts[i] + offset
                    assert context[start:start + len(answer)] == answer, (context, answer, start)
                    uid = hashlib.sha1(f"{context}\n{question}".encode()).hexdigest()[:24]
                    rows.append({"id": uid, "title": doc.title, "context": context, "question": question,
                                 "answers": {"text": [answer], "answer_start": [start]}})
    rng.shuffle(rows)
    return rows
