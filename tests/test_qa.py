"""Span-QA features (windows, labels, offsets) and post-processing (best span, v2 null answers), end to end."""

import re

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast

from kronbench.data.qa_features import collate, encode_qa
from kronbench.errors import KronbenchError
from kronbench.evaluate.metrics import compute
from kronbench.evaluate.qa import postprocess


def record(qid, context, question, answer=None, nth=0):
    """A span_qa record; `answer` located at its `nth` occurrence in `context` (None: unanswerable)."""
    starts = [m.start() for m in re.finditer(re.escape(answer), context)] if answer else []
    answers = {"text": [answer], "answer_start": [starts[nth]]} if answer else {"text": [], "answer_start": []}
    return {"id": qid, "title": "t", "context": context, "question": question, "answers": answers}


FILLER = " ".join(f"Fact {i} is dull." for i in range(12))  # 5 tokens a sentence
SHORT = record("short", "The cats sat on the mat in Paris in 1990.", "Where did the cats sit?", "the mat")
SUBWORD = record("subword", "Many cats slept while the dog ran.", "What slept?", "cats")  # cat ##s
LONG = record("long", f"{FILLER} Marie Curie won it. {FILLER}", "Who won it?", "Marie Curie")
NONE = record("none", "The dog ran in Paris.", "Who won it?")
RECORDS = [SHORT, SUBWORD, LONG]


@pytest.fixture(scope="module")
def tok():
    """Tiny uncased WordPiece over the test texts ('cats' -> cat ##s), as a fast BERT tokenizer."""
    text = " ".join(r["context"] + " " + r["question"] for r in RECORDS + [NONE]).lower()
    words = sorted(set(re.findall(r"\w+|[^\w\s]", text)) - {"cats"} | {"cat"})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + ["##s"])}
    t = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer, t.decoder = pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return BertTokenizerFast(tokenizer_object=t, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")


def span(feature, rec):
    """Token (start, end) of rec's answer in an eval feature, found through the offsets."""
    a, n = rec["answers"]["answer_start"][0], len(rec["answers"]["text"][0])
    ctx = [t for t, o in enumerate(feature["offsets"]) if o]
    return ([t for t in ctx if feature["offsets"][t][0] == a][0],
            [t for t in ctx if feature["offsets"][t][1] == a + n][0])


def logits(features, spans, value=5.0):
    """(N, T) start and end logits: 0 except `value` at the given {feature index: (start, end)}."""
    T = max(len(f["input_ids"]) for f in features)
    start, end = np.zeros((len(features), T)), np.zeros((len(features), T))
    for j, (s, e) in spans.items():
        start[j, s] += value
        end[j, e] += value
    return start, end


def test_features_round_trip(tok):
    train = encode_qa(RECORDS, tok, max_length=256, doc_stride=16, train=True)
    evals = encode_qa(RECORDS, tok, max_length=256, doc_stride=16, train=False)
    assert len(train) == len(evals) == 3  # one window each
    for rec, ft, fe in zip(RECORDS, train, evals):
        assert set(ft) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
        assert set(fe) == {"input_ids", "token_type_ids", "attention_mask", "example_id", "offsets"}
        assert ft["input_ids"] == fe["input_ids"] and fe["example_id"] == rec["id"]
        assert len(fe["offsets"]) == len(fe["input_ids"]) == len(fe["token_type_ids"]) == len(fe["attention_mask"])
        s, e = ft["start_positions"], ft["end_positions"]
        answer = rec["answers"]["text"][0]
        assert 0 < s <= e and tok.decode(ft["input_ids"][s:e + 1]) == answer.lower()
        assert rec["context"][fe["offsets"][s][0]:fe["offsets"][e][1]] == answer
        # question and special tokens have no offsets; context tokens are exactly token type 1 minus the last [SEP]
        n_ctx = sum(fe["token_type_ids"]) - 1
        assert fe["offsets"][:-1 - n_ctx] == [None] * (len(fe["offsets"]) - 1 - n_ctx) and fe["offsets"][-1] is None
        assert all(o is not None for o in fe["offsets"][-1 - n_ctx:-1])
    assert train[1]["end_positions"] == train[1]["start_positions"] + 1  # "cats" = cat ##s


def test_long_context_windows(tok):
    max_length, stride = 32, 8
    train = encode_qa([LONG], tok, max_length=max_length, doc_stride=stride, train=True)
    evals = encode_qa([LONG], tok, max_length=max_length, doc_stride=stride, train=False)
    assert len(train) == len(evals) > 3 and all(len(f["input_ids"]) <= max_length for f in train)
    ctx = [[o for o in f["offsets"] if o] for f in evals]
    for a, b in zip(ctx, ctx[1:]):
        assert a[-stride:] == b[:stride]  # consecutive windows share doc_stride context tokens
    assert ctx[0][0][0] == 0 and ctx[-1][-1][1] == len(LONG["context"])  # together they cover the context
    a0 = LONG["answers"]["answer_start"][0]
    a1 = a0 + len("Marie Curie")
    labelled = 0
    for ft, fe, c in zip(train, evals, ctx):
        if c[0][0] <= a0 and a1 <= c[-1][1]:  # the answer lies wholly in this window
            labelled += 1
            assert (ft["start_positions"], ft["end_positions"]) == span(fe, LONG)
        else:
            assert ft["start_positions"] == ft["end_positions"] == 0  # [CLS]
    assert 1 <= labelled < len(train)


def test_unanswerable_points_at_cls(tok):
    features = encode_qa([NONE, LONG], tok, max_length=32, doc_stride=8, train=True)
    assert features[0]["start_positions"] == features[0]["end_positions"] == 0


def test_postprocess_picks_the_best_valid_span(tok):
    features = encode_qa([SHORT], tok, max_length=64, doc_stride=16, train=False)
    s, e = span(features[0], SHORT)
    start, end = logits(features, {0: (s, e)})
    start[0, 1] = end[0, 1] = 99.0  # a question token: never an answer
    start[0, 0] = end[0, 0] = 99.0  # [CLS]: the null answer, ignored in v1
    start[0, e + 2] = 9.0  # a start after the best end: end < start is invalid
    assert postprocess([SHORT], features, start, end, v2=False) == {"short": "the mat"}
    assert postprocess([SHORT], features, list(start), list(end), v2=False) == {"short": "the mat"}  # rows
    start[0, s + 1] += 6.0  # "mat" alone now scores higher
    assert postprocess([SHORT], features, start, end, v2=False) == {"short": "mat"}
    assert postprocess([SHORT], features, start, end, n_best=2, v2=False) == {"short": "mat"}
    # n_best=1 keeps only the top start (e + 2), which has no valid end
    assert postprocess([SHORT], features, start, end, n_best=1, v2=False) == {"short": ""}
    # the highest pair spans 3 tokens: with max_answer_len=2 the best shorter span wins
    start[0, s - 1], end[0, s] = 20.0, 1.0
    assert postprocess([SHORT], features, start, end, v2=False) == {"short": "on the mat"}
    assert postprocess([SHORT], features, start, end, max_answer_len=2, v2=False) == {"short": "on the"}


def test_postprocess_across_windows(tok):
    features = encode_qa([LONG], tok, max_length=32, doc_stride=8, train=False)
    ctx = [[t for t, o in enumerate(f["offsets"]) if o] for f in features]
    # "Fact 0" in the first window only, "dull" of the last sentence in the last window only
    fact0 = (ctx[0][0], ctx[0][1])
    last = (ctx[-1][-2], ctx[-1][-2])
    for first, second, want in ((3.0, 4.0, "dull"), (4.0, 3.0, "Fact 0")):
        s0, e0 = logits(features, {0: fact0}, first)
        s1, e1 = logits(features, {len(features) - 1: last}, second)
        assert postprocess([LONG], features, s0 + s1, e0 + e1, v2=False) == {"long": want}


def test_postprocess_v2_null_answer(tok):
    features = encode_qa([SHORT], tok, max_length=64, doc_stride=16, train=False)
    s, e = span(features[0], SHORT)
    start, end = logits(features, {0: (s, e)}, 5.0)
    start[0, 0] = end[0, 0] = 6.0  # null 12 > best span 10
    assert postprocess([SHORT], features, start, end, v2=True) == {"short": ""}
    assert postprocess([SHORT], features, start, end, v2=True, null_threshold=3.0) == {"short": "the mat"}
    assert postprocess([SHORT], features, start, end, v2=False) == {"short": "the mat"}
    start[0, 0] = end[0, 0] = 4.0
    assert postprocess([SHORT], features, start, end, v2=True) == {"short": "the mat"}
    # the null score is the smallest over windows: one window whose [CLS] is low suffices
    features = encode_qa([LONG], tok, max_length=32, doc_stride=8, train=False)
    start, end = logits(features, {j: (0, 0) for j in range(len(features))}, 10.0)
    assert postprocess([LONG], features, start, end, v2=True) == {"long": ""}
    start[-1, 0] = end[-1, 0] = 0.0  # null 0, not above the best span's 0
    assert postprocess([LONG], features, start, end, v2=True)["long"] != ""
    assert postprocess([LONG], features, start, end, v2=True, null_threshold=-1.0) == {"long": ""}


def test_end_to_end_perfect_logits(tok):
    def perfect(records, task, v2):
        train = encode_qa(records, tok, max_length=32, doc_stride=8, train=True)
        evals = encode_qa(records, tok, max_length=32, doc_stride=8, train=False)
        start, end = logits(evals, {j: (f["start_positions"], f["end_positions"]) for j, f in enumerate(train)})
        return compute(task, postprocess(records, evals, start, end, v2=v2), records)

    assert perfect(RECORDS, "squad", False) == {"exact_match": 100.0, "f1": 100.0, "total": 3}
    out = perfect(RECORDS + [NONE], "squad-v2", True)
    assert out["exact_match"] == out["f1"] == out["HasAns_f1"] == out["NoAns_f1"] == 100.0
    assert (out["HasAns_total"], out["NoAns_total"]) == (3, 1)


def test_real_minilm_tokenizer():
    from transformers import AutoTokenizer

    from kronbench.models.sources import resolve_source

    try:
        path = resolve_source("minilm-l6")["path"]
    except KronbenchError as e:
        pytest.skip(str(e))
    tok = AutoTokenizer.from_pretrained(path)
    rec = record("q1", "Marie Skłodowska-Curie won the Nobel Prize in Physics in 1903, with Pierre Curie.",
                 "When did Marie Curie win the Nobel Prize?", "1903")
    (ft,), (fe,) = encode_qa([rec], tok, train=True), encode_qa([rec], tok, train=False)
    s, e = ft["start_positions"], ft["end_positions"]
    assert tok.decode(ft["input_ids"][s:e + 1]) == "1903"
    assert rec["context"][fe["offsets"][s][0]:fe["offsets"][e][1]] == "1903"
    start, end = logits([fe], {0: (s, e)})
    assert compute("squad", postprocess([rec], [fe], start, end, v2=False), [rec])["exact_match"] == 100.0


def test_collate_pads_to_the_longest(tok):
    features = encode_qa([SHORT, LONG], tok, max_length=32, doc_stride=8, train=True)
    batch = collate(features, pad_id=tok.pad_token_id)
    T = max(len(f["input_ids"]) for f in features)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (len(features), T)
    assert batch["start_positions"].shape == (len(features),)
    assert batch["attention_mask"].sum().item() == sum(len(f["input_ids"]) for f in features)


def test_errors(tok):
    with pytest.raises(KronbenchError, match="lower doc_stride below"):
        encode_qa([LONG], tok, max_length=16, doc_stride=9, train=True)  # the question leaves 9 context tokens
    with pytest.raises(KronbenchError, match=r"has no \['answers'\]"):
        encode_qa([{k: v for k, v in SHORT.items() if k != "answers"}], tok, train=True)
    features = encode_qa([SHORT], tok, max_length=64, doc_stride=16, train=False)
    start, end = logits(features, {})
    with pytest.raises(KronbenchError, match="one row per feature"):
        postprocess([SHORT], features, start[:0], end[:0], v2=False)
    with pytest.raises(KronbenchError, match="one logit per token"):
        postprocess([SHORT], features, start[:, :3], end[:, :3], v2=False)
    with pytest.raises(KronbenchError, match="has no feature"):
        postprocess([SHORT, NONE], features, start, end, v2=True)
    with pytest.raises(KronbenchError, match="train=False"):
        postprocess([SHORT], encode_qa([SHORT], tok, train=True), start, end, v2=False)
