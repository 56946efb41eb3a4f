"""Tiny random models, tokenizers and prepared task dirs for the stage tests (milliseconds per step, offline)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kronbench.data.records import SCHEMAS
from kronbench.data.registry import get_task

WORDS = ("the cat dog sat on a mat ran fast slow big small red blue green house tree river city man woman "
         "child book read wrote saw went came home park today yesterday happy sad").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) for _ in range(n)]


def bert_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = BertTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]")
    tok.save_pretrained(path)
    return tok


def gpt2_tokenizer(path: Path):
    from kronbench.models.tokenizers import train_bpe_tokenizer

    tok = train_bpe_tokenizer(sentences(300), vocab_size=300)
    tok.save_pretrained(path)
    return tok


def bert_model(path: Path, head: str = "masked_lm", num_labels: int = 2, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 BERT with `head`, saved with its tokenizer."""
    import torch
    import transformers

    tok = bert_tokenizer(path)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
                                  attn_implementation="eager")
    torch.manual_seed(seed)
    cls = {"masked_lm": "BertForMaskedLM", "base": "BertModel", "sequence_classification":
           "BertForSequenceClassification", "question_answering": "BertForQuestionAnswering"}[head]
    getattr(transformers, cls)(cfg).save_pretrained(path)
    return path


def gpt2_model(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = gpt2_tokenizer(path)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, attn_implementation="eager")
    torch.manual_seed(seed)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def prepared(path: Path, task: str, rows: dict[str, list[dict]]) -> Path:
    """A directory shaped like `kronbench prepare-data` output."""
    t = get_task(task)
    path.mkdir(parents=True, exist_ok=True)
    for split, recs in rows.items():
        pq.write_table(pa.Table.from_pylist(recs, schema=SCHEMAS[t.kind]), path / f"{split}.parquet")
    (path / "manifest.json").write_text(json.dumps({"task": task, "kind": t.kind, "rows": {
        s: len(r) for s, r in rows.items()}}))
    return path


def pair_task(path: Path, n: int = 64) -> Path:
    """embedded-pair shaped rows with a learnable label: sentence2 starts with sentence1's first word."""
    s1, s2 = sentences(n, 1), sentences(n, 2)
    rows = []
    for i, (a, b) in enumerate(zip(s1, s2)):
        label = i % 2
        rows.append({"sentence1": a, "sentence2": (a.split()[0] + " " + b) if label else b, "label": label})
    return prepared(path, "embedded-pair", {"train": rows, "validation": rows[: n // 2], "test": rows[n // 2:]})


def lm_task(path: Path, n: int = 60) -> Path:
    texts = [" ".join(sentences(8, i)) for i in range(n)]
    return prepared(path, "embedded-lm", {"train": texts_rows(texts), "validation": texts_rows(texts[:5]),
                                          "test": texts_rows(texts[5:10])})


def texts_rows(texts):
    return [{"text": t} for t in texts]


def qa_task(path: Path, n: int = 32) -> Path:
    """embedded-qa shaped rows: the answer is the word after "the" in a tiny context."""
    rows = []
    for i, ctx in enumerate(sentences(n, 3)):
        words = ctx.split()
        ans = words[-1]
        context = " ".join(words)
        rows.append({"id": f"q{i}", "title": "t", "context": context, "question": f"what ends {words[0]}",
                     "answers": {"text": [ans], "answer_start": [context.rindex(ans)]}})
    return prepared(path, "embedded-qa", {"train": rows, "validation": rows[: n // 2], "test": rows[n // 2:]})


def llama_config(vocab_size: int, layers: int = 2, **kw):
    """A 2-layer, hidden-32 Llama with grouped-query attention: 4 query heads, 2 KV heads of 8, SwiGLU 64."""
    from transformers import LlamaConfig

    return LlamaConfig(**{"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
                          "head_dim": 8, "max_position_embeddings": 128, "tie_word_embeddings": True,
                          "attn_implementation": "eager", **kw})


def llama_model(path: Path, seed: int = 0, layers: int = 2) -> Path:
    import torch
    from transformers import LlamaForCausalLM

    tok = gpt2_tokenizer(path)
    cfg = llama_config(len(tok), layers, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path
