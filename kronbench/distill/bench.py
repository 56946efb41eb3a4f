"""`kronbench bench-ilkd`: the cost of one task-ILKD step vs one plain fine-tuning step of the same student.

Both steps are full training steps (forward, backward, AdamW update) of the same Kronecker student on the same
batch. The plain step computes the hard-label CE only; the ILKD step adds the frozen teacher's forward and the
KroneckerBERT Eq. 14 terms (embedding, pre-softmax attention score and hidden-state MSE, logit KD, CE). Weights are
random (timing does not depend on them), built from the registry's configs, so the benchmark runs offline.
Median of `repeats` after `warmup` steps.
"""

from __future__ import annotations

import copy
import platform

import torch

from kronbench.distill.losses import PRESETS
from kronbench.distill.objectives import ilkd, supervised
from kronbench.kron.orders import time_ms
from kronbench.models.registry import get_config
from kronbench.models.surgery import compress


def bench_ilkd(model: str = "minilm-l6", preset: str = "cf=8", batch: int = 16, seq: int = 128,
               repeats: int = 10, warmup: int = 2, threads: int | None = None, normalize: bool = True) -> dict:
    from transformers import BertForSequenceClassification

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(get_config(model)).eval()
    student = copy.deepcopy(teacher).train()
    compress(student, preset, init="random")
    gen = torch.Generator().manual_seed(0)
    batch_ = {"input_ids": torch.randint(1000, 20000, (batch, seq), generator=gen),
              "attention_mask": torch.ones(batch, seq, dtype=torch.long),
              "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
              "labels": torch.randint(0, 2, (batch,), generator=gen)}
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5)

    def step(objective):
        def run():
            loss, _ = objective(student, batch_, 0)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run

    plain = supervised("pair_classification")
    kd = ilkd(teacher, "pair_classification", PRESETS["kroneckerbert"], normalize=normalize)
    plain_ms = time_ms(step(plain), repeats, warmup=warmup)
    ilkd_ms = time_ms(step(kd), repeats, warmup=warmup)
    with torch.no_grad():
        teacher_ms = time_ms(lambda: teacher(**{k: v for k, v in batch_.items() if k != "labels"}), repeats, warmup=1)
    return {"model": model, "preset": preset, "batch": batch, "seq": seq, "plain_step_ms": plain_ms,
            "ilkd_step_ms": ilkd_ms, "ratio": ilkd_ms / plain_ms, "teacher_forward_ms": teacher_ms,
            "setup": f"{platform.machine()} cpu, {torch.get_num_threads()} threads, fp32, torch {torch.__version__}, "
                     f"median of {repeats}"}
