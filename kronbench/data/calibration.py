"""Calibration text for `compress --init activation`: sentences of a prepared LM corpus, tokenised in batches.

Fit sentences come from the corpus's train split, held-out sentences (the errors `compress` reports) from its
validation split, both drawn with `seed`; token counts (the embedding's row weights) from up to `count_sentences`
train sentences. A sentence is one model input ([CLS] s [SEP] for BERT), cut to `seq` tokens.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from kronbench.data.features import read_split
from kronbench.errors import KronbenchError
from kronbench.models.calibrate import Calibration

# stages.compress.calibration: key -> default (workflow/schemas/config.schema.yaml describes them)
DEFAULTS = {"sentences": 256, "heldout": 128, "seq": 128, "seed": 0, "batch_size": 64, "count_sentences": 20000,
            "target": "teacher", "ridge": 1e-2, "iters": 30, "sequential": True}


def corpus_sentences(data_dir: str | Path, split: str, rng: random.Random, enough: int) -> list[str]:
    """Sentences of the split's texts, taken in a seeded order of texts until there are `enough` (or all): a
    WikiText-103 train split (28k articles) need not be split into sentences whole."""
    from kronbench.data.corpora import split_sentences

    texts = [r["text"] for r in read_split(data_dir, split)]
    out = []
    for i in rng.sample(range(len(texts)), len(texts)):
        out += [s for s in split_sentences(texts[i]) if s.strip()]
        if len(out) >= enough:
            break
    return out


def _draw(pool: list[str], n: int, rng: random.Random, key: str, data_dir, split: str) -> list[str]:
    if not (isinstance(n, int) and n >= 1):
        raise KronbenchError(f"calibration.{key}: {n!r}; give a number of sentences, an integer >= 1")
    if len(pool) < n:
        raise KronbenchError(f"calibration.{key}: {n} sentences asked, but {data_dir} ({split} split) has only "
                             f"{len(pool)}; lower calibration.{key} or use a larger corpus (calibration.corpus)")
    return rng.sample(pool, n)


def batches(tokenizer, texts: list[str], seq: int, batch_size: int) -> list[dict]:
    """Model inputs, sorted by length so that little padding is computed; padding is masked out of the fit."""
    enc = tokenizer(texts, truncation=True, max_length=seq)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
    out = []
    for i in range(0, len(order), batch_size):
        chunk = [texts[j] for j in order[i:i + batch_size]]
        b = tokenizer(chunk, truncation=True, max_length=seq, padding=True, return_tensors="pt")
        out.append({k: v for k, v in b.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def load_calibration(data_dir: str | Path | None, tokenizer, settings: dict | None = None) -> Calibration:
    """The Calibration of a prepared LM corpus dir, per `settings` (the calibration section; DEFAULTS fill it)."""
    s = {**DEFAULTS, **(settings or {})}
    unknown = sorted(set(s) - set(DEFAULTS) - {"corpus"})
    if unknown:
        raise KronbenchError(f"calibration: unknown key(s) {unknown}; valid: corpus, {', '.join(DEFAULTS)}")
    if data_dir is None:
        raise KronbenchError("calibration.corpus: --init activation fits the factors to text and none was given; "
                             "pass --data <a prepared LM corpus dir> (the workflow passes the config's "
                             "stages.compress.calibration.corpus, by default kd_corpus)")
    if not Path(data_dir).is_dir():
        raise KronbenchError(f"calibration.corpus: {data_dir} is not a directory; write it with "
                             f"`kronbench prepare-data <corpus> --source ... --out {data_dir}`")
    if not (isinstance(s["seq"], int) and s["seq"] >= 4):
        raise KronbenchError(f"calibration.seq: {s['seq']!r}; give the tokens per sentence, an integer >= 4")
    rng = random.Random(s["seed"])
    train = corpus_sentences(data_dir, "train", rng, max(4 * s["sentences"], s["count_sentences"]))
    fit = _draw(train, s["sentences"], rng, "sentences", data_dir, "train")
    held = _draw(corpus_sentences(data_dir, "validation", rng, 4 * s["heldout"]), s["heldout"], rng, "heldout",
                 data_dir, "validation")
    counted = train if len(train) <= s["count_sentences"] else rng.sample(train, s["count_sentences"])
    counts = Counter(t for ids in tokenizer(counted, truncation=True, max_length=s["seq"])["input_ids"] for t in ids)
    return Calibration(fit=batches(tokenizer, fit, s["seq"], s["batch_size"]),
                       heldout=batches(tokenizer, held, s["seq"], s["batch_size"]), token_counts=counts)
