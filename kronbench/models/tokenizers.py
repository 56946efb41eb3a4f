"""A GPT-2-style byte-level BPE tokenizer trained locally, for models pre-trained from scratch offline.

No GPT-2 weights install offline from the package registries, so the embedded default (`gpt2-embedded` in
registry.py) is a small GPT-2 pre-trained on the embedded-lm train split with this tokenizer. It is GPT-2's
pipeline (byte-level pre-tokenizer with GPT-2's regex, no prefix space, byte-level decoder) with a smaller
vocabulary: id 0 is `<|endoftext|>` (bos = eos = unk = pad), ids 1..256 the byte alphabet, then the merges.

Deterministic: the `tokenizers` trainer breaks count ties by the pair itself, so the same texts give the same
vocabulary and merges in every process (checked in tests/test_lm_eval.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from kronbench import atomic
from kronbench.errors import KronbenchError

EOS = "<|endoftext|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 8192, out_dir: str | Path | None = None):
    """A `GPT2TokenizerFast` trained on `texts`; saved atomically to `out_dir` (if given) with `save_pretrained`,
    so `AutoTokenizer.from_pretrained(out_dir)` loads it back offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    if vocab_size < 258:
        raise KronbenchError(f"vocab_size={vocab_size} is too small: a byte-level BPE needs 256 byte tokens plus "
                             f"{EOS}, so at least 258 (the embedded default uses 8192)")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex split + byte mapping
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # all 256 bytes, seen or not
    bpe.train_from_iterator(texts, trainer)
    if bpe.get_vocab_size() < vocab_size:
        raise KronbenchError(f"the texts give only {bpe.get_vocab_size()} BPE tokens, fewer than vocab_size="
                             f"{vocab_size}: train on more text or lower vocab_size (the model's vocab must match)")
    trained = json.loads(bpe.to_str())["model"]
    # Rebuild through GPT2TokenizerFast's own constructor: the saved files then describe exactly GPT-2's pipeline.
    tokenizer = GPT2TokenizerFast(vocab=trained["vocab"], merges=[tuple(m) for m in trained["merges"]],
                                  unk_token=EOS, bos_token=EOS, eos_token=EOS, pad_token=EOS)
    if out_dir is not None:
        save_tokenizer(tokenizer, out_dir)
    return tokenizer


def save_tokenizer(tokenizer, out_dir: str | Path) -> Path:
    """`tokenizer.save_pretrained` into a temporary directory next to `out_dir`, then renamed into place; an
    existing `out_dir` is replaced only if it holds nothing but an earlier tokenizer."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KronbenchError(f"tokenizer out_dir {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "tokenizer_config.json").is_file():
        raise KronbenchError(f"tokenizer out_dir {out} is not empty and holds no tokenizer_config.json; refusing to "
                             "overwrite it (choose another out_dir or empty it)")
    with atomic.directory(out) as tmp:
        tokenizer.save_pretrained(tmp)
    return out
