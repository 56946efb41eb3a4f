"""Perplexity protocols (docs/sources.md §5) against manual loops, LM training blocks, the local BPE tokenizer and the
gpt2-embedded architecture."""

import math
import random

import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from kronbench.errors import KronbenchError
from kronbench.evaluate.lm import lm_blocks, perplexity, windows
from kronbench.models.tokenizers import EOS, train_bpe_tokenizer

WORDS = ("the of and a in to is was for on that by with as it from his at an are this which be or had also were "
         "city river state king war music language philosophy world century first new school history Lincoln").split()
VOCAB = 320
NONOVERLAP = {"train": None, "split": "test", "join": "\n\n", "window": "model_context", "stride": "model_context",
              "unit": "token"}


def _texts(n_docs=6, n_words=120, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + "." for _ in range(n_docs)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(_texts(), vocab_size=VOCAB)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32, attn_implementation="eager")
    return GPT2LMHeadModel(config).eval()  # the manual loops below need dropout off too


def _ids(tokenizer, texts, join="\n\n"):
    return torch.tensor(tokenizer(join.join(texts), add_special_tokens=False)["input_ids"])


def _nll(model, x, labels):
    """Summed NLL via the model's own (mean) loss: HF shifts labels inside."""
    with torch.no_grad():
        loss = model(input_ids=x[None], labels=labels[None]).loss
    n = int((labels[1:] != -100).sum())
    return loss.item() * n, n


def test_nonoverlapping_windows_match_manual(model, tokenizer):
    texts = _texts()
    ids = _ids(tokenizer, texts)
    nll = n = 0
    for b in range(0, len(ids), 32):  # each chunk scored on its own: its first token is not predicted
        chunk = ids[b:b + 32]
        if len(chunk) > 1:
            dn, dc = _nll(model, chunk, chunk)
            nll, n = nll + dn, n + dc
    out = perplexity(model, tokenizer, texts, NONOVERLAP, batch_size=3)  # several batches, short last window
    assert len(ids) % 32 > 1 and out["window"] == out["stride"] == 32
    assert out["windows"] == math.ceil(len(ids) / 32) and out["tokens"] == n == len(ids) - out["windows"]
    assert out["nll_sum"] == pytest.approx(nll, rel=1e-5)
    assert out["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)


def test_sliding_window_matches_manual_loop(model, tokenizer):
    """The HF "perplexity of fixed-length models" loop: only the last `stride` tokens of later windows count."""
    texts, window, stride = _texts(), 24, 10
    ids = _ids(tokenizer, texts)
    nll = n = prev_end = 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        x = ids[begin:end]
        labels = x.clone()
        labels[:-(end - prev_end)] = -100
        dn, dc = _nll(model, x, labels)
        nll, n, prev_end = nll + dn, n + dc, end
        if end == len(ids):
            break
    out = perplexity(model, tokenizer, texts, {"join": "\n\n", "window": window, "stride": stride}, batch_size=4)
    assert out["tokens"] == n == len(ids) - 1  # every token but the very first is scored exactly once
    assert out["nll_sum"] == pytest.approx(nll, rel=1e-5)
    assert (out["window"], out["stride"]) == (24, 10)


def test_windows_cover_each_token_once():
    for n_tokens, window, stride in [(100, 32, 32), (100, 32, 7), (65, 32, 32), (5, 8, 8), (33, 32, 32)]:
        spans = windows(n_tokens, window, stride)
        scored = [b + i for b, e, first in spans for i in range(first, e - b)]
        # sliding: every token but the first; non-overlapping: all but each window's first token
        expected = [t for t in range(1, n_tokens) if stride < window or t % window]
        assert scored == expected
        assert all(e - b <= window for b, e, _ in spans)


def test_uniform_logits_give_vocab_size(model, tokenizer):
    uniform = GPT2LMHeadModel(model.config)
    with torch.no_grad():
        uniform.transformer.wte.weight.zero_()  # tied head: every logit is 0
    out = perplexity(uniform, tokenizer, _texts(2), NONOVERLAP)
    assert out["perplexity"] == pytest.approx(VOCAB, rel=1e-5)


@pytest.mark.parametrize("change,key", [({"window": "context"}, "window"), ({"stride": -4}, "stride"),
                                        ({"strides": 8}, "strides"), ({"unit": "word"}, "unit"),
                                        ({"join": None}, "join"), ({"window": 64}, "window"),
                                        ({"window": 8, "stride": 16}, "stride")])
def test_protocol_errors_name_the_key(model, tokenizer, change, key):
    with pytest.raises(KronbenchError, match=key):
        perplexity(model, tokenizer, _texts(1), {**NONOVERLAP, **change})


def test_lm_blocks(tokenizer):
    texts = _texts()
    ids = _ids(tokenizer, texts)
    blocks = lm_blocks(tokenizer, texts, 16, "\n\n")
    assert blocks.dtype == torch.long and blocks.shape == (len(ids) // 16, 16)
    assert torch.equal(blocks.flatten(), ids[:blocks.numel()])  # concatenated and chopped, remainder dropped
    assert torch.equal(blocks, lm_blocks(tokenizer, texts, 16, "\n\n"))
    with pytest.raises(KronbenchError, match="block"):
        lm_blocks(tokenizer, ["tiny"], 16, "\n\n")


def test_bpe_is_deterministic_and_round_trips(tokenizer, tmp_path):
    again = train_bpe_tokenizer(_texts(), vocab_size=VOCAB, out_dir=tmp_path / "tok")
    assert again.get_vocab() == tokenizer.get_vocab() and len(tokenizer) == VOCAB
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == EOS
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    text = "Lincoln was the king of philosophy.\n\nÜnïcödé 😀"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert loaded.eos_token_id == loaded.pad_token_id == tokenizer.eos_token_id
    train_bpe_tokenizer(_texts(), vocab_size=VOCAB, out_dir=tmp_path / "tok")  # replacing an earlier tokenizer is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.txt").write_text("x")
    with pytest.raises(KronbenchError, match="other"):
        train_bpe_tokenizer(_texts(), vocab_size=VOCAB, out_dir=tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "tok"]  # no temporary directories left


def test_gpt2_embedded_matches_the_tokenizer(tokenizer):
    import inspect

    from kronbench.models.counting import count_preset
    from kronbench.models.registry import get_config

    config = get_config("gpt2-embedded")
    assert config.vocab_size == inspect.signature(train_bpe_tokenizer).parameters["vocab_size"].default
    assert config.eos_token_id == config.bos_token_id == tokenizer.eos_token_id == 0  # special tokens come first
    row = count_preset("gpt2-embedded", "kngpt2")
    assert row["teacher_params"] == 5_322_240 and row["params"] < row["teacher_params"]
