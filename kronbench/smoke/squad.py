"""SQuAD v1.1 and v2.0 in the official json (`{train,dev}-v1.1.json`, `{train,dev}-v2.0.json`), a few dozen
questions each.

Contexts are real Wikipedia paragraphs (at most ~120 words); questions are the embedded cloze questions
(`kronbench.data.embedded_qa`), so every answer is a real span and `answer_start` its character offset (checked).
Like the official files: dev questions carry three annotator answers, v2.0 marks each question `is_impossible`
and an unanswerable one has `answers: []` plus `plausible_answers`. Unanswerable questions are made the way
SQuAD 2.0's crowd workers did it: a name in an answerable question is swapped for one the paragraph lacks.
Half the v2.0 questions are unanswerable (the official files: about a third).
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from kronbench.errors import KronbenchError
from kronbench.smoke import text as T

MAX_CONTEXT_WORDS = 120


def _contexts(docs, rng: random.Random):
    """(title, context, [(sentence, offset in context)]) for the leading sentences of each paragraph, in an
    order drawn from `rng`."""
    order = list(range(len(docs)))
    rng.shuffle(order)
    for d in order:
        for para in docs[d].paragraphs:
            sents, n = [], 0
            for s in para:
                n += len(s.split())
                if n > MAX_CONTEXT_WORDS:
                    break
                sents.append(s)
            if len(sents) >= 2:
                offsets = [sum(len(x) + 1 for x in sents[:i]) for i in range(len(sents))]
                yield d, docs[d].title.replace(" ", "_"), " ".join(sents), list(zip(sents, offsets))


def _unanswerable(question: str, answer: str, context: str, names: list[str]) -> str | None:
    """`question` with one of its names (not the answer) replaced by a name absent from `context`."""
    words = question.split()
    spots = [i for i in range(1, len(words)) if re.fullmatch(r"[A-Z][a-z]{2,}", words[i]) and words[i] not in answer]
    fresh = [x for x in names if x not in context]
    if not spots or not fresh:
        return None
    words[spots[0]] = fresh[0]
    return " ".join(words)


def _answer(text: str, start: int) -> dict:
    return {"answer_start": start, "text": text}


def questions(split: str, n: int, version: str) -> list[dict]:
    """{"title", "context", "qas"} paragraphs holding `n` questions in all."""
    rng = random.Random(f"smoke:squad-{version}:{split}:{T.SEED}")
    docs = T.documents("enwiki", split)
    names = sorted({w for doc in docs[:20] for p in doc.paragraphs for s in p for w in s.split()
                    if re.fullmatch(r"[A-Z][a-z]{3,}", w)})
    rng.shuffle(names)
    paragraphs, count = [], 0
    dev = split != "train"
    for d, title, context, sents in _contexts(docs, rng):
        qas = []
        for sentence, offset in rng.sample(sents, min(2, len(sents))):
            if count + len(qas) >= n or not T.is_clean_sentence(sentence):
                continue
            made = T.question(sentence, rng)
            if made is None:
                continue
            q, ans, off = made
            start = offset + off
            if context[start:start + len(ans)] != ans:
                raise KronbenchError(f"smoke squad: answer {ans!r} not at {start} in its context (a bug)")
            answers = [_answer(ans, start)] * (3 if dev else 1)
            uid = hashlib.sha1(f"{version}\n{context}\n{q}".encode()).hexdigest()[:24]
            if version == "2.0" and (count + len(qas)) % 2 == 1:  # every other question unanswerable
                q2 = _unanswerable(q, ans, context, names)
                if q2 is None:
                    continue
                qas.append({"plausible_answers": [_answer(ans, start)], "question": q2, "id": uid, "answers": [],
                            "is_impossible": True})
            elif version == "2.0":
                qas.append({"question": q, "id": uid, "answers": answers, "is_impossible": False})
            else:
                qas.append({"answers": answers, "question": q, "id": uid})
        if qas:
            count += len(qas)
            paragraphs.append((title, context, qas))
        if count >= n:
            break
    if count < n:
        raise KronbenchError(f"smoke squad: only {count} questions from the {split} articles; ask for fewer rows")
    articles: dict[str, list] = {}
    for title, context, qas in paragraphs:  # articles in first-seen order, as the official files group them
        para = {"qas": qas, "context": context} if version == "2.0" else {"context": context, "qas": qas}
        articles.setdefault(title, []).append(para)
    return [{"title": t, "paragraphs": ps} for t, ps in articles.items()]


def squad_json(version: str, split: str, n: int) -> str:
    data = questions(split, n, version)
    doc = {"version": "v2.0", "data": data} if version == "2.0" else {"data": data, "version": "1.1"}
    return json.dumps(doc)


def units(rows: int, eval_rows: int) -> dict:
    """file name -> a function writing it"""
    return {f"{stem}-v{v}.json": (lambda v=v, split=split, n=n: squad_json(v, split, n))
            for v in ("1.1", "2.0") for stem, split, n in (("train", "train", rows), ("dev", "validation", eval_rows))}
