"""Prepared splits -> model inputs: tokenised examples and padded batches.

A prepared task directory is what `kronbench prepare-data` writes (`<split>.parquet` + `manifest.json`).
`encode` turns one split into a list of feature dicts (python lists of ints, no padding); `Collator` pads a list of
them into a batch of tensors. Padding per batch (not to max_length) keeps CPU steps short: most embedded pairs are
well under 128 tokens.

    kind                      features
    single/pair/regression    input_ids, attention_mask, [token_type_ids], labels
    span_qa                   see kronbench.data.qa_features (windows over the context)
    lm                        input_ids (blocks of `block_size` tokens), labels = input_ids
    lm as sentence pairs      [CLS] A [SEP] B [SEP], token_type_ids, labels = input_ids (sentence_pair_features)

A corpus is tokenised as one string in pieces that change no token (`corpus_id_pieces`); kronbench.data.tokens
stores the result once per corpus and tokenizer for the KD pre-training jobs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from kronbench.data.registry import CLASSIFICATION, Task, get_task
from kronbench.errors import KronbenchError


def read_split(data_dir: str | Path, split: str) -> list[dict]:
    """Records of one prepared split; a missing file says which command writes it."""
    import pyarrow.parquet as pq

    path = Path(data_dir) / f"{split}.parquet"
    if not path.is_file():
        have = sorted(p.stem for p in Path(data_dir).glob("*.parquet")) if Path(data_dir).is_dir() else []
        raise KronbenchError(f"{path} not found (splits there: {have or 'none'}); write it with "
                             f"`kronbench prepare-data <task> --source ... --out {data_dir}`")
    return pq.read_table(path).to_pylist()


def task_of(data_dir: str | Path) -> Task:
    """The task a prepared directory holds, from its manifest."""
    manifest = Path(data_dir) / "manifest.json"
    if not manifest.is_file():
        raise KronbenchError(f"{manifest} not found: {data_dir} is not a `kronbench prepare-data` output")
    return get_task(json.loads(manifest.read_text())["task"])


def encode(task: Task, records: list[dict], tokenizer, max_length: int | None = None) -> list[dict]:
    """Tokenise sentence(-pair) records; labels stay as they are (ints, floats for regression, −1 = unlabelled)."""
    if task.kind not in (*CLASSIFICATION, "regression"):
        raise KronbenchError(f"encode() handles classification/regression; {task.name} is {task.kind!r}")
    max_length = max_length or task.max_length
    if task.kind == "single_classification":
        enc = tokenizer([r["sentence"] for r in records], truncation=True, max_length=max_length)
    else:
        enc = tokenizer([r["sentence1"] for r in records], [r["sentence2"] for r in records],
                        truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{**{k: enc[k][i] for k in keys}, "labels": r["label"]} for i, r in enumerate(records)]


def lm_features(tokenizer, texts: list[str], block_size: int, join: str = "\n\n", wrap: bool = False) -> list[dict]:
    """Concatenate `texts` (joined by `join`), cut into `block_size` blocks, drop the remainder.

    wrap=True (BERT-style encoders) reserves two positions per block for [CLS] ... [SEP], so the encoder sees
    inputs shaped like its pre-training ones.
    """
    ids = corpus_ids(tokenizer, texts, join)
    inner = block_size - 2 if wrap else block_size
    if len(ids) < inner:
        raise KronbenchError(f"LM corpus has {len(ids)} tokens, fewer than one block of {inner}")
    blocks = [ids[i:i + inner] for i in range(0, len(ids) - inner + 1, inner)]
    if wrap:
        blocks = [[tokenizer.cls_token_id, *b, tokenizer.sep_token_id] for b in blocks]
    return [{"input_ids": b, "attention_mask": [1] * len(b), "labels": b} for b in blocks]


def corpus_ids(tokenizer, texts: list[str], join: str = "\n\n") -> list[int]:
    """Token ids of the whole corpus, texts joined by `join` and tokenised as one string (what lm_features cuts)."""
    return [i for ids in corpus_id_pieces(tokenizer, texts, join) for i in ids]


def corpus_id_pieces(tokenizer, texts: list[str], join: str = "\n\n", piece_chars: int = 1 << 20,
                     batch: int = 16) -> Iterator[list[int]]:
    """corpus_ids in consecutive pieces: the joined text cut every ~`piece_chars` characters where that changes no
    token (`_cuts_safely`), each batch of pieces tokenised in parallel. One call holds the whole encoding: 6.4 GB
    peak for 35 MB of text with BERT's tokenizer (measured; so ~90 GB for WikiText-103's 540 MB), 1.6 GB in 1 M
    character pieces. A tokenizer this cannot vouch for is called once on the whole text."""
    text = join.join(texts)
    pieces = _pieces(text, piece_chars) if _cuts_safely(tokenizer) else [text]
    for i in range(0, len(pieces), batch):
        yield from tokenizer(pieces[i:i + batch], add_special_tokens=False)["input_ids"]


# A printable ASCII character followed by a space or newline: a word ends there for BERT's pre-tokenizer (whitespace
# splits words) and GPT-2's regex alike (no pattern matches non-space then space; a space run goes with the word
# after it, and `\s+(?!\S)` looks ahead only), whichever Unicode definition of whitespace each uses.
_CUT = re.compile(r"[!-~](?=[ \n])")
_LOCAL_NORMALIZERS = ("BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents")  # per character


def _pieces(text: str, size: int) -> list[str]:
    out, start = [], 0
    while len(text) - start > size and (m := _CUT.search(text, start + size)):
        out.append(text[start:m.end()])
        start = m.end()
    return out + [text[start:]]


def _cuts_safely(tokenizer) -> bool:
    """Whether a cut at `_CUT` leaves every token as one call makes it: a WordPiece or BPE model behind a pre-tokenizer
    that splits at whitespace (BERT's, Whitespace*) or GPT-2's byte-level regex without prefix space, character-local
    normalisers, and no added token holding a space or newline. Anything else (a prefix space, Metaspace, a
    normaliser that strips or replaces) is tokenised in one call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    spec = json.loads(backend.to_str())
    pre, norm = spec.get("pre_tokenizer") or {}, spec.get("normalizer") or {}
    splits = pre.get("type") in ("BertPreTokenizer", "Whitespace", "WhitespaceSplit") or (
        pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space") and pre.get("use_regex", True))
    norms = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm] if norm else []
    return (splits and (spec.get("model") or {}).get("type") in ("WordPiece", "BPE")
            and all(n.get("type") in _LOCAL_NORMALIZERS for n in norms)
            and not any(set(" \n") & set(t.get("content", "")) for t in spec.get("added_tokens") or []))


def sentence_pair_features(tokenizer, texts: list[str], max_length: int, seed: int = 0, copies: int = 1,
                           hard_fraction: float = 0.0, gap: int = 3) -> list[dict]:
    """BERT's pre-training input format, [CLS] A [SEP] B [SEP] with token types 0/1 (Devlin et al. 2019 §3.1,
    next-sentence prediction; KroneckerBERT's stage 1 keeps BERT's MLM + NSP objectives, docs/sources.md §1.6).

    A is each sentence of each text in turn (split by kronbench.data.corpora.split_sentences); B is the sentence
    that follows it half of the time, else a random sentence of another text, drawn with `seed`. With probability
    `hard_fraction` that other sentence comes from A's own text, at least `gap` sentences away (same topic, no
    continuity: embedded-pair's hard negatives). `copies` repeats the pass with fresh draws. No NSP label is kept:
    the teacher's intermediate layers are the targets, and `labels` (= input_ids) serve the MLM term. Each
    sentence is cut to half of `max_length` − 3 tokens. `sentence_docs` tokenises, `pair_features` draws the pairs
    (kronbench.data.tokens caches the former).
    """
    return pair_features(sentence_docs(tokenizer, texts), tokenizer, max_length, seed, copies, hard_fraction, gap)


def sentence_docs(tokenizer, texts: list[str], batch: int = 4096) -> list[list[list[int]]]:
    """The token ids of each sentence of each text (kronbench.data.corpora.split_sentences), sentences that
    tokenise to nothing dropped. Encoded in batches: each sentence alone, as one call per sentence would."""
    from kronbench.data.corpora import split_sentences

    split = [split_sentences(t) for t in texts]
    flat = [x for sents in split for x in sents]
    ids = [x for i in range(0, len(flat), batch)
           for x in tokenizer(flat[i:i + batch], add_special_tokens=False)["input_ids"]]
    docs, start = [], 0
    for sents in split:
        docs.append([x for x in ids[start:start + len(sents)] if x])
        start += len(sents)
    return docs


def pair_features(docs: list[list[list[int]]], tokenizer, max_length: int, seed: int = 0, copies: int = 1,
                  hard_fraction: float = 0.0, gap: int = 3) -> list[dict]:
    """sentence_pair_features from tokenised sentences (`sentence_docs`); `tokenizer` gives [CLS] and [SEP]."""
    rng = random.Random(seed)
    if sum(1 for d in docs if d) < 2:
        raise KronbenchError("sentence-pair corpus: need at least two texts with sentences")
    others = [[j for j in range(len(docs)) if j != d and docs[j]] for d in range(len(docs))]  # B's texts, per A's
    half = (max_length - 3) // 2
    out = []
    for _ in range(copies):
        for d, doc in enumerate(docs):
            for i, a in enumerate(doc):
                if i + 1 < len(doc) and rng.random() < 0.5:
                    b = doc[i + 1]
                elif hard_fraction and len(doc) > 2 * gap and rng.random() < hard_fraction:
                    while abs((j := rng.randrange(len(doc))) - i) < gap:  # len(doc) > 2 * gap: one exists
                        pass
                    b = doc[j]
                else:
                    b = rng.choice(docs[rng.choice(others[d])])
                a, b = a[:half], b[:half]
                ids = [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b, tokenizer.sep_token_id]
                out.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                            "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1), "labels": ids})
    return out


class Collator:
    """Pads feature dicts to the longest in the batch. `labels` of token level (lists) pad with −100."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        t = max(len(f["input_ids"]) for f in features)
        batch = {}
        for key in features[0]:
            vals = [f[key] for f in features]
            if not isinstance(vals[0], list):  # sequence-level labels
                batch[key] = torch.tensor(vals, dtype=torch.float32 if isinstance(vals[0], float) else torch.long)
                continue
            pad = {"input_ids": self.pad_id, "labels": -100}.get(key, 0)
            batch[key] = torch.tensor([v + [pad] * (t - len(v)) for v in vals], dtype=torch.long)
        return batch
