"""`kronbench bench-ilkd`: the cost of one task-ILKD step vs one plain fine-tuning step of the same student.

Both steps are full training steps (forward, backward, AdamW update) of the same Kronecker student on the same
batch. The plain step computes the hard-label CE only; the ILKD step adds the frozen teacher's forward and the
KroneckerBERT Eq. 14 terms (embedding, pre-softmax attention score and hidden-state MSE, logit KD, CE). Weights are
random (timing does not depend on them), built from the registry's configs, so the benchmark runs offline.
Medians over at least `repeats` rounds after `warmup` (`timing.compare`), each with its IQR, and `noisy` when a
median missed its ±3 % interval within `max_seconds` or other processes took our cores. The steps update the
student as they go (AdamW steps on one batch): the step time does not depend on the weights' values.
"""

from __future__ import annotations

import copy

import torch

from kronbench import timing
from kronbench.distill.losses import PRESETS
from kronbench.distill.objectives import ilkd, supervised
from kronbench.kron import orders
from kronbench.models.registry import get_config
from kronbench.models.surgery import kroneckerize


def bench_ilkd(model: str = "minilm-l6", preset: str = "cf=8", batch: int = 16, seq: int = 128,
               repeats: int = 10, warmup: int = 2, threads: int | None = None, normalize: bool = True,
               max_seconds: float = 60.0) -> dict:
    """Median step times of plain fine-tuning and of ILKD with the teacher in fp32 and in bf16 (autocast).

    The three steps are timed round-robin (plain, ILKD fp32, ILKD bf16, plain, ...) so that a machine slowing down
    or speeding up during the run shifts all of them alike.
    """
    from transformers import BertForSequenceClassification

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(get_config(model)).eval()
    student = copy.deepcopy(teacher).train()
    kroneckerize(student, preset, init="random")
    gen = torch.Generator().manual_seed(0)
    batch_ = {"input_ids": torch.randint(1000, 20000, (batch, seq), generator=gen),
              "attention_mask": torch.ones(batch, seq, dtype=torch.long),
              "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
              "labels": torch.randint(0, 2, (batch,), generator=gen)}
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5)
    inputs = {k: v for k, v in batch_.items() if k != "labels"}

    def step(objective):
        def run():
            loss, _ = objective(student, batch_, 0)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run

    def teacher_forward(bf16):
        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                teacher(**inputs)
        return run

    kd = lambda precision: ilkd(teacher, "pair_classification", PRESETS["kroneckerbert"],  # noqa: E731
                                normalize=normalize, teacher_precision=precision)
    runs = {"plain_step_ms": step(supervised("pair_classification")), "ilkd_step_ms": step(kd("fp32")),
            "ilkd_bf16_teacher_step_ms": step(kd("bf16")), "teacher_forward_ms": teacher_forward(False),
            "teacher_forward_bf16_ms": teacher_forward(True)}
    cmp = timing.compare(runs, reference="plain_step_ms", warmup=warmup, min_rounds=repeats,
                         max_seconds=max_seconds)
    row = {"model": model, "preset": preset, "batch": batch, "seq": seq,
           **{name: r["median_ms"] for name, r in cmp.rows.items()},
           **{name.removesuffix("_ms") + "_iqr_ms": r["iqr_ms"] for name, r in cmp.rows.items()}}
    # medians of per-round ratios: a slow-down that hits one round hits both steps of it
    row["ratio"] = cmp.rows["ilkd_step_ms"]["vs_reference"]
    row["ratio_bf16_teacher"] = cmp.rows["ilkd_bf16_teacher_step_ms"]["vs_reference"]
    row["noisy"], row["reasons"] = cmp.noisy, cmp.reasons
    row["setup"] = (f"{orders.cpu_identity()}, {torch.get_num_threads()} threads, student fp32, torch "
                    f"{torch.__version__}, median of {cmp.rounds} rounds")
    return row
