"""`kronbench tokenize-corpus` and `--tokens`: the cached KD corpus gives the features the in-process path gives."""

import json
import random

import pytest
import tiny
import torch
from official_layouts import WIKITEXT
from safetensors.torch import load_file

from kronbench.cli import main
from kronbench.data import tokens
from kronbench.data.features import lm_features, sentence_docs, sentence_pair_features
from kronbench.distill import stages
from kronbench.errors import KronbenchError

TRAIN = {"lr": 1e-3, "epochs": 1, "batch_size": 4, "max_steps": 3, "checkpoint_every": 0, "log_every": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    texts = [". ".join(s.capitalize() for s in tiny.sentences(6, seed)) + "." for seed in range(12)]
    texts[3] = ""  # a text without sentences keeps its place (pair_features indexes texts)
    lm = tiny.prepared(root / "lm", "embedded-lm", {"train": tiny.texts_rows(texts),
                                                     "validation": tiny.texts_rows(texts[:2]),
                                                     "test": tiny.texts_rows(texts[2:4])})
    return {"root": root, "texts": texts, "lm": lm, "bert": tiny.bert_model(root / "bert"),
            "gpt2": tiny.gpt2_model(root / "gpt2")}


def _tok(path):
    return tokens.load_tokenizer(str(path))[0]


@pytest.mark.parametrize("model, wrap", [("bert", True), ("gpt2", False)])
def test_cached_blocks_equal_lm_features(world, tmp_path, model, wrap):
    out = tmp_path / f"{model}-16.npz"
    manifest = tokens.tokenize_corpus(world["lm"], str(world[model]), out, block_size=16)
    tok = _tok(world[model])
    want = lm_features(tok, world["texts"], 16, wrap=wrap)
    assert tokens.load_blocks(out, world["lm"], tok, 16, wrap) == want
    assert manifest == json.loads(out.with_suffix(".json").read_text())
    assert (manifest["corpus"], manifest["format"], manifest["block_size"], manifest["wrap"]) == (
        "embedded-lm", "blocks", 16, wrap)
    assert manifest["count"] == len(want) and manifest["tokenizer"]["name"] == str(world[model])
    assert manifest["tokenizer"]["fingerprint"] == tokens.fingerprint(tok) and len(manifest["sha256"]) == 64


def test_cached_sentences_equal_per_sentence_tokenisation(world, tmp_path):
    """The batched sentence_docs equals tokenising one sentence per call (the former code), and the cache equals
    it; pairs drawn from either are the same."""
    from kronbench.data.corpora import split_sentences

    tok = _tok(world["bert"])
    old = [[x for x in (tok(s, add_special_tokens=False)["input_ids"] for s in split_sentences(t)) if x]
           for t in world["texts"]]
    assert sentence_docs(tok, world["texts"], batch=5) == old
    out = tmp_path / "bert-sentences.npz"
    tokens.tokenize_corpus(world["lm"], str(world["bert"]), out, fmt="sentences")
    assert tokens.load_sentences(out, world["lm"], tok) == old
    cached = stages.corpus_dataset(world["lm"], tok, 32, wrap=True, fmt="sentence_pairs", seed=3, copies=2,
                                   hard_fraction=0.5, tokens=out)
    assert cached == sentence_pair_features(tok, world["texts"], 32, seed=3, copies=2, hard_fraction=0.5)


def test_distill_with_tokens_trains_the_same_weights(world, tmp_path, capsys):
    """distill-pretrain and baseline-distil: --tokens from `kronbench tokenize-corpus` == no --tokens."""
    out = tmp_path / "tokens" / "gpt2-16.npz"
    assert main(["tokenize-corpus", "--data", str(world["lm"]), "--tokenizer", str(world["gpt2"]),
                 "--block-size", "16", "--out", str(out)]) == 0
    assert "blocks" in capsys.readouterr().out
    stages.compress(str(world["gpt2"]), "cf=2", tmp_path / "s0")
    for name, tok_file in (("plain", None), ("cached", out)):
        stages.distill("pretrain", str(tmp_path / "s0/model"), str(world["gpt2"]), world["lm"], tmp_path / name,
                       TRAIN, block_size=16, tokens=tok_file)
        code = main(["baseline-distil", "--teacher", str(world["gpt2"]), "--data", str(world["lm"]),
                     "--out", str(tmp_path / f"distil-{name}"), "--set", "data.block_size=16",
                     "--set", "train.max_steps=2", "--set", "train.batch_size=4"]
                    + (["--tokens", str(tok_file)] if tok_file else []))
        assert code == 0, capsys.readouterr().err
    for a, b in (("plain", "cached"), ("distil-plain", "distil-cached")):
        wa, wb = (load_file(str(tmp_path / d / "model/model.safetensors")) for d in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a
        ca, cb = (json.loads((tmp_path / d / "config.json").read_text()) for d in (a, b))
        assert ca == cb  # same config hash: the cached file changes where tokens come from, not the run


TRICKY = ("  = Alpha = \n \n Alpha 's   letter , \t don't 1,234.5 @-@ x .  \n\n\n = = History = = \n"
          "Caf\u00e9 na\u00efve \u00a0nbsp\u3000ideographic \u4e2d\u6587 emoji \U0001F600 end.\u2028sep\x1cfs x"
          " \n \r\n tail<|endoftext|>[SEP]  \n")


@pytest.mark.parametrize("which", ["minilm-l6", "bpe"])
def test_pieces_tokenise_as_one_call(which):
    """corpus_ids cuts the joined text into pieces (here every ~1 k characters, thousands of cuts) where no token
    changes: the ids equal one call on the whole text, for BERT's WordPiece and GPT-2's byte-level BPE."""
    from kronbench.data.corpora import load_corpus
    from kronbench.data.features import _cuts_safely, corpus_id_pieces
    from kronbench.models.tokenizers import train_bpe_tokenizer

    rng = random.Random(0)
    noise = "".join(rng.choice("ab'sé1.=-\u4e2d \n\t\r\xa0\u3000\x1c\u2028") for _ in range(50_000))
    texts = [d.text for d in load_corpus("enwiki")][:40] + [TRICKY * 3, WIKITEXT] * 20 + [noise]
    tok = _tok(which) if which != "bpe" else train_bpe_tokenizer(texts, vocab_size=3000)
    assert _cuts_safely(tok)
    one = tok("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    for size in (997, 13):  # a cut every ~1 k characters, and at nearly every word end
        pieces = list(corpus_id_pieces(tok, texts, piece_chars=size, batch=64))
        assert len(pieces) > 500 and [i for p in pieces for i in p] == one, size


def test_unknown_pipelines_are_tokenised_in_one_call(world):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from kronbench.data.features import _cuts_safely, corpus_id_pieces

    bpe = _tok(world["gpt2"])
    spec = json.loads(bpe.backend_tokenizer.to_str())
    spec["pre_tokenizer"]["add_prefix_space"] = True  # each piece would get a space of its own
    prefixed = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)))
    meta = Tokenizer(models.BPE())
    meta.pre_tokenizer = pre_tokenizers.Metaspace()
    for tok in (prefixed, PreTrainedTokenizerFast(tokenizer_object=meta)):
        assert not _cuts_safely(tok)
        assert len(list(corpus_id_pieces(tok, ["a b. " * 400] * 3, piece_chars=10))) == 1


def test_foreign_or_damaged_tokens_fail_with_the_fix(world, tmp_path):
    out = tmp_path / "gpt2-16.npz"
    tokens.tokenize_corpus(world["lm"], str(world["gpt2"]), out, block_size=16)
    gpt2, bert = _tok(world["gpt2"]), _tok(world["bert"])
    with pytest.raises(KronbenchError, match=r"block_size 16, this run needs 32.*kronbench tokenize-corpus"):
        tokens.load_blocks(out, world["lm"], gpt2, 32, False)
    with pytest.raises(KronbenchError, match=r"made for another run \(fingerprint .*wrap False, this run needs True"):
        tokens.load_blocks(out, world["lm"], bert, 16, True)
    with pytest.raises(KronbenchError, match=r"format 'blocks', this run needs 'sentences'"):
        tokens.load_sentences(out, world["lm"], bert)
    other = tiny.prepared(tmp_path / "other", "embedded-lm", {"train": tiny.texts_rows(world["texts"][:6])})
    with pytest.raises(KronbenchError, match=r"corpus_sha256 "):
        tokens.load_blocks(out, other, gpt2, 16, False)
    out.write_bytes(out.read_bytes()[:-8])
    with pytest.raises(KronbenchError, match=r"sha256 is not the one in .*gpt2-16\.json"):
        tokens.load_blocks(out, world["lm"], gpt2, 16, False)
    out.with_suffix(".json").unlink()
    with pytest.raises(KronbenchError, match=r"gpt2-16\.json not found; write both with `kronbench tokenize-corpus"):
        tokens.load_blocks(out, world["lm"], gpt2, 16, False)
    with pytest.raises(KronbenchError, match=r"the task stage reads the task's own data"):
        stages.distill("task", str(world["gpt2"]), None, world["lm"], tmp_path / "t", TRAIN, tokens=out)
    with pytest.raises(KronbenchError, match=r"name the file <name>\.npz"):
        tokens.tokenize_corpus(world["lm"], str(world["gpt2"]), tmp_path / "x.bin")
