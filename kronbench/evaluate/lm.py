"""Token-level perplexity under a task's `protocols:` entry, and fixed-size token blocks for LM training.

A protocol (docs/sources.md §5: never compare numbers across protocols) is a dict from the task YAML, e.g.
    {train: null, split: test, join: "\\n\\n", window: model_context, stride: model_context, unit: token}
`train`/`split` choose the data and are the caller's business; here the texts are joined with `join` and tokenized
once (no special tokens added), then cut into windows of `window` tokens starting every `stride` tokens:
- stride == window: non-overlapping windows (krony-PT's protocol, docs/sources.md §5); the first token of each window has
  no context and is not predicted;
- stride < window: sliding windows (the HF "perplexity of fixed-length models" loop); after the first window only
  the last `stride` tokens of each window are scored, each with at least window - stride tokens of context.
`window`/`stride` are ints or "model_context" (config.n_positions or max_position_embeddings). Perplexity is
exp(total NLL / predicted tokens), not krony-PT's mean of per-window means (the two differ only through the
shorter last window).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kronbench.errors import KronbenchError
from kronbench.evaluate.device import resolve_device

PROTOCOL_KEYS = {"train", "split", "join", "window", "stride", "unit"}
LOGITS_BUDGET = 2 ** 26  # float32 logits per forward (256 MB); the batch shrinks to fit, never below one window


def model_context(model) -> int:
    config = model.config
    for key in ("n_positions", "max_position_embeddings"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise KronbenchError(f"{type(model).__name__}'s config has neither n_positions nor max_position_embeddings: "
                         "give the protocol an integer window/stride instead of model_context")


def resolve_protocol(protocol: dict, context: int) -> tuple[str, int, int]:
    """(join, window, stride) from a protocol dict, checked against the model context."""
    if not isinstance(protocol, dict):
        raise KronbenchError(f"protocol must be a mapping like {{join: ..., window: model_context, stride: "
                             f"model_context, unit: token}}, got {type(protocol).__name__}")
    unknown = set(protocol) - PROTOCOL_KEYS
    if unknown:
        raise KronbenchError(f"protocol has unknown key(s) {sorted(unknown)}; valid: "
                             f"{', '.join(sorted(PROTOCOL_KEYS))}")
    if protocol.get("unit", "token") != "token":
        raise KronbenchError(f"protocol unit {protocol['unit']!r} is not supported: only unit: token (word-level "
                             "perplexity, as in lm-evaluation-harness, is a different protocol; docs/sources.md §5)")
    if not isinstance(protocol.get("join"), str):
        raise KronbenchError(f"protocol key join must be a string (the task YAMLs use \"\\n\\n\"), got "
                             f"{protocol.get('join')!r}")

    def size(key: str, default=None) -> int:
        value = protocol.get(key, default)
        if value == "model_context":
            return context
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise KronbenchError(f"protocol key {key} is {value!r}; use model_context or a positive integer")

    window = size("window")
    stride = size("stride", protocol.get("window"))  # a missing stride means non-overlapping windows
    if not 2 <= window <= context:
        raise KronbenchError(f"protocol key window is {window}: it must be between 2 and the model context ({context})")
    if stride > window:
        raise KronbenchError(f"protocol key stride ({stride}) exceeds window ({window}): tokens between windows "
                             "would never be scored; use stride <= window")
    return protocol["join"], window, stride


def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position within the window) for each window over n_tokens tokens."""
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + window, n_tokens)
        first = max(1, prev_end - begin)  # overlap with the previous window is context only; position 0 is never scored
        if first < end - begin:
            out.append((begin, end, first))
        prev_end = end
        if end == n_tokens:
            break
    return out


def _tokenize(tokenizer, texts: list[str], join: str) -> list[int]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise KronbenchError("texts must be a list of strings (the `text` column of a prepared LM split)")
    # verbose=False: the joined text is longer than model_max_length on purpose; windows cut it afterwards
    return tokenizer(join.join(texts), add_special_tokens=False, verbose=False)["input_ids"]


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], protocol: dict, batch_size: int = 8, device="auto") -> dict:
    """Perplexity of a causal LM on `texts` under `protocol` (see the module docstring); the model is moved to
    `device` (auto | cpu | cuda[:N], kronbench.evaluate.device: auto = the GPU when there is one) and evaluated in
    eval mode (its training flag is restored afterwards), logits in fp32.

    Returns {"perplexity", "nll_sum", "tokens" (predicted), "windows", "window", "stride"}; nll_sum/tokens are what
    kronbench.evaluate.metrics.perplexity takes, so runs can be summed.
    """
    join, window, stride = resolve_protocol(protocol, model_context(model))
    ids = torch.tensor(_tokenize(tokenizer, texts, join), dtype=torch.long)
    spans = windows(len(ids), window, stride)
    if not spans:
        raise KronbenchError(f"the texts give {len(ids)} token(s); perplexity needs at least 2")
    device = resolve_device(device)
    was_training = model.training
    model.to(device).eval()
    nll_sum, tokens = 0.0, 0
    # (B, T, V) float logits are the largest tensors here: 32 windows of 1024 over SmolLM2's 49,152 tokens are 6.4 GB
    # (a 20 GB process). Fewer windows per forward keep them near LOGITS_BUDGET; gpt2-embedded (256 x 8192) keeps 32.
    per_forward = max(1, min(batch_size, LOGITS_BUDGET // (window * model.config.vocab_size)))
    try:
        for i in range(0, len(spans), per_forward):
            group = spans[i:i + per_forward]
            # windows are `window` long except possibly the last: batch equal lengths only, so nothing is padded
            for length in dict.fromkeys(e - b for b, e, _ in group):
                part = [s for s in group if s[1] - s[0] == length]
                x = torch.stack([ids[b:e] for b, e, _ in part]).to(device)  # (B, T)
                logits = model(input_ids=x).logits[:, :-1].float()  # (B, T-1, V): position t predicts token t+1
                targets = x[:, 1:].clone()  # (B, T-1)
                for row, (_, _, first) in enumerate(part):
                    targets[row, :first - 1] = -100  # tokens before `first` are context only
                nll_sum += F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="sum").item()
                tokens += int((targets != -100).sum())
    finally:
        model.train(was_training)
    return {"perplexity": math.exp(nll_sum / tokens), "nll_sum": nll_sum, "tokens": tokens, "windows": len(spans),
            "window": window, "stride": stride}


def lm_blocks(tokenizer, texts: list[str], block_size: int, join: str = "\n\n") -> torch.LongTensor:
    """(N, block_size) token ids for LM training: `texts` joined with `join`, tokenized once, cut into consecutive
    blocks; the remainder shorter than a block is dropped. Deterministic (same texts, same tensor)."""
    if not (isinstance(block_size, int) and block_size >= 2):
        raise KronbenchError(f"block_size must be an integer >= 2, got {block_size!r}")
    ids = _tokenize(tokenizer, texts, join)
    n = len(ids) // block_size
    if n == 0:
        raise KronbenchError(f"the texts give {len(ids)} tokens, fewer than one block of {block_size}: use more "
                             "text or a smaller block_size")
    return torch.tensor(ids[:n * block_size], dtype=torch.long).view(n, block_size)  # (N, block_size)
