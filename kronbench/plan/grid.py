"""The experiment grid of a config: which jobs exist, what each reads, and with which settings.

`Plan(config)` answers every question a rule asks (workflow/rules/*.smk call it and nothing else); the grid is
the rows files `experiment_rows()` lists, the targets of gather. A method's record (kronbench.methods) says which
rule makes its checkpoint and what that rule starts from, so no rule branches on a method's name.
"""

from __future__ import annotations

import json
import shlex

from kronbench.errors import KronbenchError
from kronbench.methods import BASELINES, METHODS, chain, get_method, parse_run, run_name
from kronbench.models.registry import family
from kronbench.plan.layout import GENERAL, Layout
from kronbench.plan.names import compare_presets, data_source
from kronbench.plan.settings import pretrain_runs, stage_settings

TABLES = ["glue", "squad", "ood", "lm", "ablation", "summary"]
FIGURE_FAMILIES = ("bert", "gpt2")  # always drawn; a Llama-family model in the config adds its own


def figure_names(families=FIGURE_FAMILIES) -> list[str]:
    return [f"score_vs_{x}_{fam}" for x in ("params", "flops", "latency_ms") for fam in families] + ["training_curves"]


FIGURES = figure_names()


def _task(name: str):
    from kronbench.data.registry import get_task

    return get_task(name)


class Plan:
    def __init__(self, config: dict):
        self.config = config
        self.models = config["models"]
        self.paths = Layout(config["results_dir"], config["tables_dir"])

    # ------------------------------------------------------------------------------------------ tasks, seeds
    def train_task(self, task: str) -> str:
        """The task whose fine-tuned models score `task`: its YAML source_task (mnli-mm -> mnli, MRPC's PAWS),
        else the task itself."""
        return _task(task).source_task or task

    def seeds_for(self, task: str) -> list[int]:
        """Seeds of a task's models; an evaluation-only task (mnli-mm) has those of the models that score it."""
        return self.config["task_seeds"].get(self.train_task(task), self.config["seeds"])

    def eval_split(self, task: str) -> str:
        """evaluate.split where the task has it labelled, else validation, else test (IMDb has only test)."""
        t = _task(task)
        for split in (self.config["evaluate"]["split"], "validation", "test"):
            if split in t.splits and split not in t.unlabelled:
                return split
        raise KronbenchError(f"task {task}: no labelled validation or test split to evaluate on")

    def lm_split(self, task: str, protocol: str) -> str:
        return _task(task).protocols[protocol].get("split") or "test"

    def ood_of(self, task: str) -> list[str]:
        """The configured OOD sets whose YAML source_task is `task`."""
        return [o for o in self.config["ood_tasks"] if _task(o).source_task == task]

    def ablation_tasks(self, model: str) -> list[str]:
        m = self.models[model]
        return m["tasks"] if m["ablation_tasks"] is None else m["ablation_tasks"]

    def compare_presets(self, model: str) -> list[str]:
        return compare_presets(self.models[model])

    # ------------------------------------------------------------------------------------------------- data
    def data_done(self, task: str) -> str:
        return self.paths.data_done(task)

    def prepare_data_flags(self, task: str) -> str:
        """Options of `kronbench prepare-data <task>`: source, data dir, row cap (data.max_rows, max_lm_rows for LM
        tasks) and the pinned hub revision (data.revisions, keyed by the dataset's hub path)."""
        d, source = self.config["data"], data_source(self.config, task)
        t = _task(task)
        flags = [f"--source {source}"]
        if source == "local":
            flags.append(f"--data-dir {shlex.quote(d['data_dir'])}")
        n = (d["max_lm_rows"] or d["max_rows"]) if t.kind == "lm" else d["max_rows"]
        flags += [f"--max-rows {n}"] if n else []
        pins, path = d.get("revisions") or {}, t.sources.get("hub", {}).get("path")
        flags += [f"--revision {shlex.quote(pins[path])}"] if source == "hub" and path in pins else []
        return " ".join(flags)

    # ----------------------------------------------------------------------------------------- base models
    def base_seed(self, model: str) -> int:
        """Seed of the base model's own run (pretrain_lm); hub/embedded bases count as seed 0."""
        if self.models[model]["pretrain"] is None:
            return 0
        return self.settings("pretrain_lm", model)["train"].get("seed", 0)

    def base_model(self, model: str) -> str:
        """--model/--teacher of the pretrained base: the pretrain_lm model dir, or the configured name[@revision]."""
        m = self.models[model]
        if m["pretrain"] is not None:
            return f"{self.paths.base_run(model, self.base_seed(model))}/model"
        return f"{m['base']}@{m['revision']}" if m["revision"] else m["base"]

    def base_inputs(self, model: str) -> list[str]:
        if self.models[model]["pretrain"] is None:
            return []
        return [f"{self.paths.base_run(model, self.base_seed(model))}/summary.json"]

    # ---------------------------------------------------------------------------------------------- settings
    def settings(self, stage: str, model: str, preset=None, task=None, seed=None, method=None) -> dict:
        s = stage_settings(self.config, stage, model, preset, task, seed, method)
        if stage == "distill_task" and s.get("data", {}).get("transfer"):
            s["data"]["transfer"] = self.paths.data_dir(self.config["kd_corpus"])  # true: the KD corpus's pairs
        return s

    @staticmethod
    def settings_arg(settings: dict) -> str:
        """The settings document as one `--config` argument (JSON, which YAML reads too)."""
        return shlex.quote(json.dumps(settings, sort_keys=True, separators=(",", ":")))

    # --------------------------------------------------------------------------------------- compress (student0)
    def compress_settings(self, model: str, preset: str, chain: str = "kronecker") -> dict:
        """stages.compress (overrides select by model, preset and method = the chain), with the chain's own init
        (an init ablation's) and calibration.corpus, a kd_corpus-like corpus name, as its prepared dir."""
        s = self.settings("compress", model, preset, method=chain)
        own = get_method(chain).init
        if own:
            s["init"] = own
        s.setdefault("calibration", {})["corpus"] = self.calibration_corpus(model, preset, chain)
        return s

    def calibration_corpus(self, model: str, preset: str, chain: str = "kronecker") -> str:
        """The corpus compress reads its calibration text from (default kd_corpus)."""
        s = self.settings("compress", model, preset, method=chain)
        return s.get("calibration", {}).get("corpus") or self.config["kd_corpus"]

    def compress_inputs(self, model: str, preset: str, chain: str = "kronecker") -> list[str]:
        """The base model's run (self-pretrained) and the calibration corpus's manifest: compress reports every
        student's errors on held-out text, and fits to it with init activation."""
        return self.base_inputs(model) + [self.data_done(self.calibration_corpus(model, preset, chain))]

    # ----------------------------------------------------------------------------- KD pre-training (student1)
    def pretrain_run(self, model: str, preset: str, seed, round: str = ""):
        """(k, runs): which run of a KD pre-training a job is (round wildcard '-round<k>', '' for the last) and
        every run's settings."""
        runs = pretrain_runs(self.config, model, preset)
        k = int(round.removeprefix("-round")) if round else len(runs)
        if k >= len(runs) and round:
            raise KronbenchError(f"KD pre-training of {model} {preset} has {len(runs)} run(s) (1 + the length of "
                                 f"stages.distill_pretrain.rounds), so there is no round {k}: its last run is "
                                 f"seed<k>/")
        return k, runs

    def pretrain_run_dir(self, model: str, preset: str, seed, k: int, runs: int, chain: str = "kronecker") -> str:
        """Run k (1-based) of `runs`: the last is seed<seed>/ (student1), the earlier ones seed<seed>-round<k>/."""
        return self.paths.kd_pretrain_run(model, preset, seed, None if k == runs else k, chain)

    def pretrain_student(self, model: str, preset: str, seed, round: str = "", chain: str = "kronecker") -> str:
        """The run a KD pre-training run starts from: student0 (compress) for run 1, else the run before."""
        k, runs = self.pretrain_run(model, preset, seed, round)
        if k == 1:
            return self.paths.compress_run(model, preset, chain)
        return self.pretrain_run_dir(model, preset, seed, k - 1, len(runs), chain)

    def pretrain_settings(self, model: str, preset: str, seed, round: str = "") -> dict:
        """The run's settings; run k draws its pairs with train.seed = seed + k - 1 (fresh partners each run).
        The same for every chain: an init ablation differs from kronecker only in its student0."""
        k, runs = self.pretrain_run(model, preset, seed, round)
        s = runs[k - 1]
        s.setdefault("train", {})["seed"] = int(seed) + k - 1
        return s

    def corpus_tokens(self, model: str, settings: dict) -> str:
        """The tokenize_corpus file a KD pre-training run reads: <model>-<data.block_size>.npz, or
        <model>-sentences.npz for data.format sentence_pairs. Not under data/<corpus>/: DVC tracks those whole."""
        data = settings.get("data", {})
        # 128: the stages' default block_size; the stage checks the file's block size against its own anyway
        what = "sentences" if data.get("format") == "sentence_pairs" else data.get("block_size", 128)
        return self.paths.tokens(self.config["kd_corpus"], model, what)

    def distil_settings(self, model: str, seed) -> dict:
        return self.settings("baseline_distil", model, task=self.config["kd_corpus"], seed=seed)

    # --------------------------------------------------------------------------------- task stages (student2)
    def task_run(self, model: str, task: str, run: str, seed) -> str:
        method, preset = parse_run(run)
        return self.paths.run(model, task, method, preset, seed)

    def general_run(self, model: str, what: str | None, preset: str | None, seed,
                    method: str = "kronecker") -> str | None:
        """The task-independent run a method record names (its `student` or `lm`): kd-pretrained (student1),
        compressed (student0), both of the method's chain; distil (the KD-pretrained distil student); None for
        anything else."""
        if what == "kd-pretrained":
            return self.paths.kd_pretrain_run(model, preset, seed, chain=chain(method))
        if what == "compressed":
            return self.paths.compress_run(model, preset, chain(method))
        if what == "distil":
            return self.paths.distil_pretrain_run(model, seed)
        return None

    def start_run(self, model: str, run: str, seed) -> str:
        """The run distill_task starts from: the method record's student (kd-pretrained, compressed, distil)."""
        method, preset = parse_run(run)
        start = self.general_run(model, get_method(method).student, preset, seed, method)
        if start is None:
            raise KronbenchError(f"run {run!r}: method {method!r} has no distill_task student (kronbench.methods)")
        return start

    def task_teacher(self, model: str, task: str, run: str, seed) -> list[str]:
        """[the fine-tuned teacher's run] where the method distils from it, else []."""
        return [self.paths.teacher_run(model, task, seed)] if get_method(parse_run(run)[0]).kd else []

    def task_settings(self, model: str, task: str, run: str, seed) -> dict:
        """distill_task's settings for this method (overrides select by method); without KD the loss is CE only
        and there is no transfer set (it needs the teacher's targets)."""
        method, preset = parse_run(run)
        s = self.settings("distill_task", model, preset, task, seed, method)
        if not get_method(method).kd:
            s["loss"] = {"weights": {"ce": 1.0}}
            s.pop("data", None)
        return s

    def transfer_inputs(self, model: str, task: str, run: str, seed) -> list[str]:
        """[the KD corpus's manifest] when the task stage adds its unlabelled transfer set (data.transfer)."""
        if self.task_settings(model, task, run, seed).get("data", {}).get("transfer"):
            return [self.data_done(self.config["kd_corpus"])]
        return []

    # ------------------------------------------------------------------------------------------- evaluation
    def eval_target(self, model: str, task: str, run: str, seed, lm: bool) -> tuple[str, list[str]]:
        """(--model argument, input files) of the checkpoint an evaluate job scores."""
        method, preset = parse_run(run)
        m = self.models[model]
        if lm and method == m["base_method"]:
            return self.base_model(model), self.base_inputs(model)
        if lm:  # task-independent students: student1, and the distil student after its KD pre-training
            ckpt = self.general_run(model, get_method(method).lm, preset, seed, method)
            if ckpt is None:
                raise KronbenchError(f"{run}: method {method!r} has no LM checkpoint (kronbench.methods)")
        elif method == m["base_method"]:
            ckpt = self.paths.teacher_run(model, self.train_task(task), seed)
        else:
            ckpt = self.task_run(model, self.train_task(task), run, seed)
        return f"{ckpt}/model", [f"{ckpt}/summary.json"]

    # ---------------------------------------------------------------------------------------------- the grid
    def task_runs(self, model: str) -> list[str]:
        """Runs scored on each task and its OOD sets: the base model, the Kronecker students and the baselines."""
        m = self.models[model]
        runs = [m["base_method"]] + [run_name("kronecker", p) for p in m["presets"]]
        for b in (b for b in BASELINES if b in m["baselines"]):  # the registry's order, whatever the config's
            runs += [run_name(b, p) for p in self.compare_presets(model)] if METHODS[b].preset else [b]
        return runs

    def ablation_runs(self, model: str) -> list[str]:
        m = self.models[model]
        return [run_name(a, p) for a in m["ablations"] for p in self.compare_presets(model)]

    def lm_runs(self, model: str) -> list[str]:
        """Task-independent runs with LM rows, besides the base model: the KD-pretrained students, the baselines
        and the ablations with an LM checkpoint (decompose-only: student0 before any training; init-*: their
        chain's KD-pretrained student), these at compare_presets."""
        m = self.models[model]
        return ([run_name("kronecker", p) for p in m["presets"]]
                + [b for b in BASELINES if b in m["baselines"] and METHODS[b].lm]
                + [run_name(a, p) for a in m["ablations"] if METHODS[a].lm for p in self.compare_presets(model)])

    def experiment_rows(self) -> list[str]:
        """Every rows file of the grid: base-model, Kronecker and baseline rows on each task and its OOD sets, per
        seed; the ablation rows on ablation_tasks (no OOD sets: Table 6 has none); LM rows of the base model, the
        KD-pretrained students and the distil student."""
        rows, paths = [], self.paths
        for model, m in self.models.items():
            for task in m["tasks"]:
                for seed in self.seeds_for(task):
                    for et in [task] + self.ood_of(task):
                        rows += [paths.rows(model, et, run, seed, self.eval_split(et)) for run in self.task_runs(model)]
                    if task in self.ablation_tasks(model):
                        rows += [paths.rows(model, task, run, seed, self.eval_split(task))
                                 for run in self.ablation_runs(model)]
            for task in m["lm_tasks"]:
                for proto in self.config["lm_protocols"]:
                    split = self.lm_split(task, proto)
                    rows.append(paths.rows(model, task, m["base_method"], self.base_seed(model), split, proto))
                    rows += [paths.rows(model, task, run, seed, split, proto)
                             for run in self.lm_runs(model) for seed in self.config["seeds"]]
        return rows

    def training_logs(self) -> dict[str, str]:
        """label -> run dir of the training curves drawn by `kronbench figures`: every stage behind each model's
        first task at its first seed (labels drop '=', which --logs uses as separator)."""
        logs = {}
        if not self.config["figures"]["curves"]:
            return logs
        for model, m in self.models.items():
            if m["pretrain"] is not None:
                logs[f"{model} pretrain-lm"] = self.paths.base_run(model, self.base_seed(model))
            trained = [t for t in m["tasks"] if self.train_task(t) == t]
            if not trained:
                continue
            task = trained[0]
            seed = self.seeds_for(task)[0]
            logs[f"{model} teacher {task}"] = self.paths.teacher_run(model, task, seed)
            for p in m["presets"]:
                name = p.replace("=", "")
                runs = len(pretrain_runs(self.config, model, p))
                for k in range(1, runs + 1):  # every run of a KD pre-training in rounds
                    label = f"{model} {name} kd-pretrain" + (f" {k}/{runs}" if runs > 1 else "")
                    logs[label] = self.pretrain_run_dir(model, p, seed, k, runs)
                logs[f"{model} {name} task-kd {task}"] = self.paths.run(model, task, "kronecker", p, seed)
        return logs

    def figure_families(self) -> list[str]:
        """BERT and GPT-2 (drawn for every config, as before), then any other family the config's models have."""
        extra = sorted({family(m) for m in self.models} - set(FIGURE_FAMILIES))
        return [*FIGURE_FAMILIES, *extra]

    def figures(self) -> list[str]:
        return figure_names(self.figure_families())

    def count_targets(self) -> list[str]:
        return [self.paths.count(arch, p) for arch, presets in self.config["count"]["presets"].items()
                for p in presets]

    # ---------------------------------------------------------------------------------------------- latency
    def latency_plan(self, fam: str, seed) -> list[dict]:
        """The checkpoints compare_latency times side by side for one model family and seed: one per (model, run,
        head) the rows of that seed need, each with the key of its teacher (same model, or for a model without
        teacher rows, e.g. distilgpt2, the teacher whose name it contains) and the same head."""
        from kronbench.evaluate.latency import head_of, latency_key

        plan, seed = {}, int(seed)

        def add(model, run, head, task, lm):
            method, preset = parse_run(run)
            key = latency_key(model, method, preset, head)
            if key not in plan:
                ckpt, inputs = self.eval_target(model, task, run, seed, lm=lm)
                plan[key] = {"key": key, "checkpoint": ckpt, "inputs": inputs, "model": model, "head": head}

        for model, m in self.models.items():
            if family(model) != fam:
                continue
            for task in m["tasks"]:
                if seed in self.seeds_for(task):
                    runs = self.task_runs(model)
                    runs += self.ablation_runs(model) if task in self.ablation_tasks(model) else []
                    for run in runs:
                        add(model, run, head_of(_task(task).kind), task, lm=False)
            if m["lm_tasks"]:  # the base model at its own seed, and as every seed's reference
                add(model, m["base_method"], "lm", m["lm_tasks"][0], lm=True)
                if seed in self.config["seeds"]:
                    for run in self.lm_runs(model):
                        add(model, run, "lm", m["lm_tasks"][0], lm=True)
        teachers = {(e["model"], e["head"]): key for key, e in plan.items() if key.split("|")[1] == "teacher"}
        for e in plan.values():
            inside = [t for (t, h) in teachers if h == e["head"] and t in e["model"]]
            t = e["model"] if (e["model"], e["head"]) in teachers else (inside[0] if len(inside) == 1 else None)
            e["teacher"] = teachers.get((t, e["head"]))
        return list(plan.values())

    def latency_arg(self, fam: str, seed) -> str:
        """compare-latency --plan: the JSON list of {key, checkpoint, teacher}."""
        return json.dumps([{k: e[k] for k in ("key", "checkpoint", "teacher")} for e in self.latency_plan(fam, seed)])

    def latency_seeds(self, fam: str) -> list[int]:
        """Seeds with rows in this family: the tasks' seeds, and for LM rows the run seeds and the base's own."""
        seeds = set()
        for model, m in self.models.items():
            if family(model) == fam:
                seeds |= {s for t in m["tasks"] for s in self.seeds_for(t)}
                seeds |= set(self.config["seeds"]) | {self.base_seed(model)} if m["lm_tasks"] else set()
        return sorted(seeds)

    def latency_files(self) -> list[str]:
        """Every compare_latency output of the grid (none when evaluate.latency.enabled is false)."""
        if not self.config["evaluate"]["latency"]["enabled"]:
            return []
        return [self.paths.latency(fam, s) for fam in sorted({family(m) for m in self.models})
                for s in self.latency_seeds(fam)]

    def latency_flags(self) -> str:
        lat = self.config["evaluate"]["latency"]
        return (f"--batch {lat['batch']} --seq {lat['seq']} --device {lat['device']} --target {lat['target']} "
                f"--max-seconds {lat['max_seconds']} --min-rounds {lat['min_rounds']}")

    # ------------------------------------------------------------------------------------------- launching
    def launcher(self) -> str:
        """The training rules' command: kronbench, or config `launcher` (e.g. torchrun --nproc_per_node 4 -m
        kronbench.cli). Every launch gets its own rendezvous port, so two multi-process jobs on one node never meet
        on the default 29500: torchrun without a rendezvous option gets --standalone (it binds a free port
        itself), accelerate launch without --main_process_port one the job's shell picks when it starts."""
        words = shlex.split(self.config["launcher"])
        if not words:
            return "kronbench"
        rendezvous = ("--standalone", "--rdzv", "--master", "--nnodes")
        if words[0] == "torchrun" and not any(w.startswith(rendezvous) for w in words):
            words.insert(1, "--standalone")
        elif words[:2] == ["accelerate", "launch"] and not any(w.startswith("--main_process_port") for w in words):
            words[2:2] = ["--main_process_port", "$(python -m kronbench.free_port)"]
        return " ".join(w if w.startswith("$(") else shlex.quote(w) for w in words)


__all__ = ["Plan", "TABLES", "FIGURES", "GENERAL"]
