"""SQuAD-style features: span_qa records -> BERT inputs, one feature per window of the context.

A record (records.SCHEMAS["span_qa"]) is {"id", "title", "context", "question", "answers": {"text": [str],
"answer_start": [int]}}. It is encoded as "[CLS] question [SEP] context-window [SEP]"; a context that does not fit
`max_length` is cut into overlapping windows, consecutive windows sharing `doc_stride` context tokens (the
tokenizer's `stride`). Only the context is ever truncated.

Training features are labelled with the token indices of the first answer; a window that does not contain the whole
answer, and every window of an unanswerable (SQuAD v2.0) question, points at [CLS] (index 0), the "no answer" slot.
Evaluation features keep `example_id` and `offsets` (the context character span of each token, None for question
and special tokens) so that `kronbench.evaluate.qa.postprocess` can map predicted tokens back to answer text.

Features are not padded (SQuAD contexts are mostly far shorter than 384 tokens): `collate` pads each batch to its
longest feature.
"""

from __future__ import annotations

from kronbench.errors import KronbenchError

MODEL_KEYS = ("input_ids", "token_type_ids", "attention_mask")  # what the encoder takes
LABEL_KEYS = ("start_positions", "end_positions")  # what BertForQuestionAnswering takes to return a loss
_FIELDS = ("id", "context", "question")


def encode_qa(records, tokenizer, max_length: int = 384, doc_stride: int = 128, *, train: bool) -> list[dict]:
    """span_qa records -> list of features (several per record when its context needs more than one window).

    Every feature: input_ids, token_type_ids, attention_mask (lists of length T <= max_length).
    train=True adds start_positions, end_positions (ints; 0 = [CLS] = no answer in this window);
    train=False adds example_id (the record's id) and offsets (T entries: (char_start, char_end) for context
    tokens, None otherwise). Windows come in record order, then context order.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise KronbenchError(f"encode_qa needs a fast tokenizer (offset mappings), got {type(tokenizer).__name__}: "
                             "load it with AutoTokenizer.from_pretrained(path) (use_fast is the default)")
    if not 0 <= doc_stride < max_length:
        raise KronbenchError(f"doc_stride={doc_stride} must be in [0, max_length={max_length})")
    records = list(records)
    for i, r in enumerate(records):
        missing = [k for k in _FIELDS + (("answers",) if train else ()) if k not in r]
        if missing:
            raise KronbenchError(f"QA record {i} has no {missing}: records need the span_qa columns "
                                 "id, title, context, question, answers (kronbench.data.records.SCHEMAS)")
    if not records:
        return []
    questions = [r["question"].lstrip() for r in records]  # leading spaces only waste window room
    _check_room(records, questions, tokenizer, max_length, doc_stride)
    enc = tokenizer(questions, [r["context"] for r in records], truncation="only_second", max_length=max_length,
                    stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    features = []
    for j, i in enumerate(enc["overflow_to_sample_mapping"]):  # j: window, i: its record
        f = {k: enc[k][j] for k in MODEL_KEYS}
        seq = enc.sequence_ids(j)  # None (special), 0 (question) or 1 (context), per token
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][j], seq)]
        if train:
            f["start_positions"], f["end_positions"] = _label(records[i]["answers"], offsets, records[i]["id"])
        else:
            f["example_id"], f["offsets"] = records[i]["id"], offsets
        features.append(f)
    return features


def _check_room(records, questions, tokenizer, max_length, doc_stride):
    """Each window must hold more than `doc_stride` context tokens (the tokenizer panics otherwise)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for r, n in zip(records, lengths):
        room = max_length - specials - n  # context tokens per window
        if room <= doc_stride:
            raise KronbenchError(f"QA record {r['id']!r}: its question takes {n} tokens, leaving {room} of "
                                 f"max_length={max_length} for the context, not more than doc_stride={doc_stride}; "
                                 f"raise max_length or lower doc_stride below {max(room, 1)}")


def _label(answers, offsets, qid) -> tuple[int, int]:
    """Token (start, end) of the first answer inside this window, or (0, 0) when it is not wholly inside."""
    if not answers["text"] or not answers["text"][0]:
        return 0, 0  # unanswerable (v2.0)
    start = answers["answer_start"][0]
    end = start + len(answers["text"][0])  # exclusive
    ctx = [t for t, o in enumerate(offsets) if o is not None]
    if not ctx:
        raise KronbenchError(f"QA record {qid!r}: a window has no context tokens (empty context?)")
    if offsets[ctx[0]][0] > start or offsets[ctx[-1]][1] < end:
        return 0, 0
    s = min(t for t in ctx if offsets[t][1] > start)  # first token ending after the answer starts
    e = max(t for t in ctx if offsets[t][0] < end)  # last token starting before it ends
    return s, e


def collate(features: list[dict], pad_id: int = 0) -> dict:
    """A batch of features -> LongTensors (B, T), padded on the right to the longest feature; plus (B,) labels
    when the features have them. `example_id` and `offsets` stay with the features (for postprocess)."""
    import torch

    T = max(len(f["input_ids"]) for f in features)
    pad = {"input_ids": pad_id, "token_type_ids": 0, "attention_mask": 0}
    batch = {k: torch.tensor([f[k] + [pad[k]] * (T - len(f[k])) for f in features]) for k in MODEL_KEYS}
    for k in LABEL_KEYS:
        if k in features[0]:
            batch[k] = torch.tensor([f[k] for f in features])  # (B,)
    return batch
