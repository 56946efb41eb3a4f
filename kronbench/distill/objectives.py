"""What a training step minimises, per stage: `objective(student, batch, step) -> (loss, terms)`.

- `supervised`: the task loss alone (teacher fine-tuning, LM pre-training, the no-KD ablations).
- `ilkd`: KroneckerBERT Eq. 14 / KnGPT2 ILKD against a frozen teacher, terms and weights from config
  (`kronbench.distill.losses`), plus MLM masking for BERT pre-training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronbench.distill.capture import MODEL_INPUTS, capture
from kronbench.distill.losses import check_finite, hard_label_loss, ilkd_loss, lm_loss, logit_kd
from kronbench.distill.loop import processes, step_generator
from kronbench.errors import KronbenchError

QA_LABELS = ("start_positions", "end_positions")
TEACHER_PRECISIONS = ("fp32", "bf16", "auto")


def resolve_teacher_precision(precision: str, device: torch.device | str) -> str:
    """"auto" -> bf16 where the hardware has fast bf16 (CUDA with bf16; a CPU with oneDNN bf16 support, i.e.
    AVX512-BF16 or AMX), else fp32: on other CPUs bf16 autocast is emulated and slower than fp32."""
    if precision not in TEACHER_PRECISIONS:
        raise KronbenchError(f"loss.teacher_precision: {precision!r}; use one of {', '.join(TEACHER_PRECISIONS)}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def mask_tokens(batch: dict, tokenizer, prob: float, gen: torch.Generator, part: tuple[int, int] = (0, 1)) -> dict:
    """BERT MLM masking (Devlin et al. 2019 §3.1): `prob` of real tokens predicted; of those 80 % [MASK],
    10 % random, 10 % kept. Randomness comes from `gen` so a resumed run masks identically.

    part = (process index, process count) under data parallelism: every draw is made for the global batch and this
    process keeps its rows, so processes mask differently and, for rows of one length (LM blocks), exactly as one
    process with the whole global batch would."""
    ids = batch["input_ids"].clone()
    (b, t), (i, n) = ids.shape, part
    rows = slice(i * b, (i + 1) * b)  # this process's B rows of an (n·B, T) draw
    special = torch.tensor([[t in tokenizer.all_special_ids for t in row] for row in ids.tolist()])
    picked = (torch.rand(n * b, t, generator=gen)[rows] < prob) & ~special & batch["attention_mask"].bool()
    labels = torch.where(picked, ids, torch.full_like(ids, -100))
    u = torch.rand(n * b, t, generator=gen)[rows]
    ids[picked & (u < 0.8)] = tokenizer.mask_token_id
    rand = picked & (u >= 0.8) & (u < 0.9)
    ids[rand] = torch.randint(len(tokenizer), (n * b, t), generator=gen)[rows][rand]
    return {**batch, "input_ids": ids, "labels": labels}


def supervised(kind: str):
    """Plain fine-tuning / LM training: CE (MSE for regression), span CE for QA, CLM for causal LMs."""

    def objective(model: nn.Module, batch: dict, step: int) -> tuple[Tensor, dict]:
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        if kind == "span_qa":
            out = model(**inputs, **{k: batch[k] for k in QA_LABELS})
            terms = {"ce": out.loss}
        else:
            logits = model(**inputs).logits
            terms = {"lm": lm_loss(logits, batch["labels"], causal=True)} if kind == "lm" else \
                {"ce": hard_label_loss(logits, batch["labels"])}
        total = next(iter(terms.values()))
        check_finite(total, terms)
        return total, {k: v.detach() for k, v in terms.items()}

    return objective


def ilkd(teacher: nn.Module, kind: str, weights: dict, *, layer_map="identity", temperature: float = 1.0,
         normalize: bool = False, kd_form: str = "kl", t_squared: bool = True, mlm: dict | None = None,
         seed: int = 0, teacher_precision: str = "fp32"):
    """ILKD against `teacher`. Attention probabilities are captured only when `att_kl` is weighted (eager path).

    teacher_precision="bf16" runs the frozen teacher's forward under bfloat16 autocast (the losses still compute in
    float32): ~3× faster on CPUs with AVX512-BF16/AMX and on GPUs, for targets ~3 significant digits exact, far
    below the student's error; "auto" picks bf16 where it is fast (`resolve_teacher_precision`). Default fp32, as
    the papers.

    For span QA the prediction-layer terms are computed on start and end logits (mean of the two), as TinyBERT
    does for SQuAD; `ce` is then the span CE.
    mlm = {"tokenizer": tok, "prob": 0.15} masks the batch first (BERT KD pre-training with an MLM head).
    """
    need_probs = bool(weights.get("att_kl"))
    resolve_teacher_precision(teacher_precision, "cpu")  # a bad value fails here, before any step
    low = None  # resolved on the first batch, whose device is the one training runs on
    qa_terms = {k: weights[k] for k in ("logit_kd", "ce") if kind == "span_qa" and weights.get(k)}
    body = {k: v for k, v in weights.items() if k not in qa_terms}
    state = processes()
    part = (state.process_index, state.num_processes)  # this process's rows of each global batch's MLM draws

    def objective(model: nn.Module, batch: dict, step: int) -> tuple[Tensor, dict]:
        if mlm is not None:
            batch = mask_tokens(batch, mlm["tokenizer"], mlm["prob"], step_generator(seed, step), part)
        nonlocal low
        device = batch["input_ids"].device.type
        if low is None:
            low = resolve_teacher_precision(teacher_precision, device) == "bf16"
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=low):
            t = capture(teacher, batch, attentions=need_probs)
        s = capture(model, batch, attentions=need_probs)
        total, terms = (ilkd_loss(s, t, batch, body, layer_map, temperature, normalize=normalize,
                                  kd_form=kd_form, t_squared=t_squared) if any(body.values())
                        else (torch.zeros((), device=batch["input_ids"].device), {}))
        if qa_terms:
            extra = _qa_terms(s.output, t.output, batch, qa_terms, temperature, kd_form, t_squared)
            total = total + sum(qa_terms[k] * v for k, v in extra.items())
            check_finite(total, extra)
            terms.update({k: v.detach() for k, v in extra.items()})
        return total, terms

    return objective


def span_ce(out, batch) -> Tensor:
    """HF's QA loss: mean of start and end CE; positions outside the sequence are ignored."""
    t = out.start_logits.shape[1]
    start, end = (batch[k].clamp(0, t) for k in QA_LABELS)
    ce = lambda z, y: F.cross_entropy(z.float(), y, ignore_index=t)  # noqa: E731
    return 0.5 * (ce(out.start_logits, start) + ce(out.end_logits, end))


def _qa_terms(s_out, t_out, batch, weights, temperature, kd_form, t_squared) -> dict:
    terms = {}
    if "ce" in weights:
        terms["ce"] = span_ce(s_out, batch)
    if "logit_kd" in weights:
        kd = lambda s, t: logit_kd(s, t, temperature, None, kd_form, t_squared)  # noqa: E731
        terms["logit_kd"] = 0.5 * (kd(s_out.start_logits, t_out.start_logits) + kd(s_out.end_logits, t_out.end_logits))
    return terms
