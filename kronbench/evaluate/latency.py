"""Inference latency of one forward pass, with the setup that produced it (papers report speed-ups without it).

Random token ids (seeded) of shape (batch, seq), an attention mask of ones and, for BERT-style models, token type ids
of zeros; `torch.inference_mode`, eval mode, no KV cache. Works for any HF BERT or GPT-2 model, with or without a
head, dense or Kronecker-compressed (a compressed model is still the same HF class). The median of `repeats` timed
forwards after `warmup` untimed ones; on CUDA each forward is synchronized and the GPU is named in the setup.
CPU reference timings for this machine are in reference/ecosystem.md §4.
"""

from __future__ import annotations

import inspect
import statistics
import time

import torch

from kronbench.errors import KronbenchError

DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _inputs(model, batch_size: int, seq_len: int, device) -> dict:
    config = model.config
    context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if context and seq_len > context:
        raise KronbenchError(f"seq_len={seq_len} exceeds the model context ({context} positions): use seq_len <= "
                             f"{context}")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch_size, seq_len), generator=g)  # (B, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "type_vocab_size", 0):  # BERT: segment ids (GPT-2 would embed them with wte instead)
        inputs["token_type_ids"] = torch.zeros_like(ids)
    if "use_cache" in inspect.signature(model.forward).parameters:
        inputs["use_cache"] = False  # time the forward, not building a KV cache
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}


def measure_latency(model, batch_size: int = 16, seq_len: int = 128, repeats: int = 20, warmup: int = 3,
                    device="cpu", threads: int | None = None) -> dict:
    """{"latency_ms": median milliseconds per forward, "latency_setup": e.g. "cpu, 2 threads, batch 16 x seq 128,
    fp32, median of 20"}. `threads` sets torch's intra-op threads for the measurement only (restored after)."""
    if repeats < 1 or warmup < 0 or batch_size < 1 or seq_len < 1:
        raise KronbenchError(f"measure_latency needs repeats >= 1, warmup >= 0, batch_size >= 1 and seq_len >= 1; got "
                             f"repeats={repeats}, warmup={warmup}, batch_size={batch_size}, seq_len={seq_len}")
    device = torch.device(device)
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    old_threads, was_training = torch.get_num_threads(), model.training
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        model.to(device).eval()
        inputs = _inputs(model, batch_size, seq_len, device)
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                sync()
                start = time.perf_counter()
                model(**inputs)
                sync()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
        n_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    where = f"cuda ({torch.cuda.get_device_name(device)})" if cuda else f"{device.type}, {n_threads} threads"
    dtype = next(model.parameters()).dtype
    setup = f"{where}, batch {batch_size} x seq {seq_len}, {DTYPES.get(dtype, str(dtype))}, median of {repeats}"
    return {"latency_ms": statistics.median(times), "latency_setup": setup}
