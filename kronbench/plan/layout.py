"""Every path of a results directory, in one place. Pure string functions: no config, no filesystem.

    <R>/data/<task>/manifest.json                          prepare_data
    <R>/tokens/<corpus>/<model>-<block|sentences>.npz       tokenize_corpus
    <R>/runs/<model>/_general/teacher/seed<k>/              pretrain_lm (a self-pretrained base)
    <R>/runs/<model>/<task>/teacher/seed<k>/                finetune_teacher
    <R>/runs/<model>/_general/<chain>-<preset>/compressed/  compress (student0; seed-independent)
    <R>/runs/<model>/_general/<chain>-<preset>/seed<k>[-round<j>]/  distill_pretrain (student1 and its rounds)
                                                  (chain: kronecker, or an init ablation's, kronbench.methods.CHAINS)
    <R>/runs/<model>/_general/distil/seed<k>/               baseline_distil
    <R>/runs/<model>/<task>/<method>[-<preset>]/seed<k>/    distill_task (kronecker, distil, ablations),
                                                            baseline_rosita (rosita-<preset>)
    <R>/rows/<model>/<eval task>/<method>[-<preset>]/seed<k>/<split>[-<protocol>].jsonl   evaluate_task, evaluate_lm
    <R>/latency/<family>/seed<k>.json                       compare_latency
    <R>/counts/<arch>/<preset>.json                         count_preset
    <R>/all_results.jsonl                                   gather

Tasks never start with an underscore, so _general (the task-independent runs) is no task; model, task and preset
names never hold a slash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kronbench.methods import run_name

GENERAL = "_general"


@dataclass(frozen=True)
class Layout:
    results: str  # config results_dir
    tables: str   # config tables_dir

    def __post_init__(self):
        object.__setattr__(self, "results", os.path.normpath(self.results))
        object.__setattr__(self, "tables", os.path.normpath(self.tables))

    # data
    def data_dir(self, task: str) -> str:
        return f"{self.results}/data/{task}"

    def data_done(self, task: str) -> str:
        return f"{self.data_dir(task)}/manifest.json"

    def tokens(self, corpus: str, model: str, what) -> str:
        return f"{self.results}/tokens/{corpus}/{model}-{what}.npz"

    # runs
    def run(self, model: str, task: str, method: str, preset: str | None, seed) -> str:
        """A trained run: task = _general for the task-independent ones."""
        return f"{self.results}/runs/{model}/{task}/{run_name(method, preset)}/seed{seed}"

    def teacher_run(self, model: str, task: str, seed) -> str:
        return self.run(model, task, "teacher", None, seed)

    def base_run(self, model: str, seed) -> str:
        return self.run(model, GENERAL, "teacher", None, seed)

    def compress_run(self, model: str, preset: str, chain: str = "kronecker") -> str:
        """student0 of a chain: kronecker, or an init ablation's own (kronbench.methods.CHAINS)."""
        return f"{self.results}/runs/{model}/{GENERAL}/{run_name(chain, preset)}/compressed"

    def kd_pretrain_run(self, model: str, preset: str, seed, round: int | None = None, chain: str = "kronecker") -> str:
        """student1 (round None), or run <round> of a KD pre-training given as several runs."""
        return self.run(model, GENERAL, chain, preset, seed) + (f"-round{round}" if round else "")

    def distil_pretrain_run(self, model: str, seed) -> str:
        return self.run(model, GENERAL, "distil", None, seed)

    # rows and summaries
    def rows(self, model: str, task: str, run: str, seed, split: str, protocol: str | None = None) -> str:
        name = f"{split}-{protocol}" if protocol else split
        return f"{self.results}/rows/{model}/{task}/{run}/seed{seed}/{name}.jsonl"

    def latency(self, family: str, seed) -> str:
        return f"{self.results}/latency/{family}/seed{seed}.json"

    def count(self, arch: str, preset: str) -> str:
        return f"{self.results}/counts/{arch}/{preset}.json"

    def all_results(self) -> str:
        return f"{self.results}/all_results.jsonl"
