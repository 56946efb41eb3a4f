"""Where evaluation runs: config `evaluate.device` / `kronbench evaluate-task|evaluate-lm --device` -> a torch device.

One resolution for every evaluation path (classification, span QA, perplexity, latency):
    auto      cuda when torch sees a GPU, else cpu (the workflow's default: a GPU job scores on its GPU)
    cpu       the CPU, as before this option existed (same numbers)
    cuda[:N]  that GPU; an error when torch sees none, so a job that asked for a GPU never scores on the CPU unnoticed
Rows record the device as `eval_device` ("cpu", or "cuda (<GPU name>)").
"""

from __future__ import annotations

import re

import torch

from kronbench.errors import KronbenchError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """auto | cpu | cuda | cuda:N -> torch.device; cuda without a visible GPU is a KronbenchError."""
    text = str(name if name is not None else "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not re.fullmatch(r"cuda(:\d+)?", text):
        raise KronbenchError(f"evaluate.device {name!r}: use auto, cpu, cuda or cuda:<index> (--device on the CLI)")
    if not torch.cuda.is_available():
        raise KronbenchError(f"evaluate.device is {text!r} but torch sees no GPU (torch.cuda.is_available() is "
                             f"False): use auto or cpu, or run the job where a GPU is visible (profiles/slurm "
                             f"gives evaluate jobs one unless KRONBENCH_SLURM_GRES is empty)")
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise KronbenchError(f"evaluate.device {text!r}: torch sees {torch.cuda.device_count()} GPU(s); use cuda or "
                             f"an index below that")
    return device


def device_name(device: torch.device | str) -> str:
    """'cpu', or 'cuda (NVIDIA H100 80GB HBM3)' / 'cuda:1 (...)': the GPU named, as rows and latency setups say."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return f"{device} ({torch.cuda.get_device_name(device)})"
