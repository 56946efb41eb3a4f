"""The pipeline's stages as library functions; each `kronbench <subcommand>` is a thin wrapper around one.

    finetune_teacher   pretrained model + task            -> fine-tuned teacher       (the papers' teachers)
    pretrain_lm        architecture + LM corpus           -> self-pretrained GPT-2    (embedded GPT-2 teacher)
    compress           pretrained model + preset          -> NKP-initialised student  (KroneckerBERT §3.4, stage 1)
    distill pretrain   student + pretrained teacher + LM  -> KD-pretrained student    (KB §3.6 stage 1; KnGPT2)
    distill task       student + fine-tuned teacher + task -> task student            (KB §3.6 stage 2)

Every stage writes into its run directory: `model/` (weights, tokenizer, kronbench_run.json), `config.json` (the
resolved config), `log.jsonl` (training curve), and last `summary.json` (wall time, steps), which marks the stage
done. An interrupted stage resumes from `checkpoints/` when rerun with the same config; once summary.json is
written the checkpoints are deleted (summary.json's `intermediate` says what and how many bytes) unless
`keep_intermediate` (config keep_intermediate, --keep-intermediate).

Under a multi-process launch (`torchrun --nproc_per_node N -m kronbench.cli ...`) every process trains (data
parallel, `train.batch_size` per process) and only the main one writes files; the others wait at a barrier for
them (`loop.is_main` / `loop.barrier`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from kronbench.data.features import (encode, lm_features, pair_features, read_split, sentence_docs,
                                     sentence_pair_features, task_of)
from kronbench.distill import objectives
from kronbench.distill.loop import LoopConfig, barrier, is_main
from kronbench.distill.losses import PRESETS
from kronbench.distill.runner import config_hash, lineage_tune_seconds, run_stage, write_json
from kronbench.errors import KronbenchError
from kronbench.models import checkpoints

HEAD_OF_KIND = {"single_classification": "sequence_classification", "pair_classification": "sequence_classification",
                "regression": "sequence_classification", "span_qa": "question_answering", "lm": "causal_lm"}


# --------------------------------------------------------------------------------------------- helpers
def _num_labels(task) -> int | None:
    if task.kind == "regression":
        return 1
    return len(task.labels) if task.labels else None


def task_dataset(task, data_dir, tokenizer, split: str, max_length: int | None = None) -> list[dict]:
    records = read_split(data_dir, split)
    if task.kind == "span_qa":
        from kronbench.data.qa_features import encode_qa

        feats = encode_qa(records, tokenizer, max_length=max_length or task.max_length, train=True)
        return [{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids", *objectives.QA_LABELS) if k in f}
                for f in feats]
    if task.kind == "lm":
        return lm_features(tokenizer, [r["text"] for r in records], max_length or 128)
    return encode(task, records, tokenizer, max_length)


CORPUS_FORMATS = ("blocks", "sentence_pairs")
UNLABELLED = -100  # the label of transfer-set examples: CE skips them, the KD terms do not


def transfer_dataset(task, transfer_dir, tokenizer, seed: int, copies: int = 1,
                     hard_fraction: float = 0.0) -> list[dict]:
    """An unlabelled transfer set for task KD (Hinton et al. 2015 §2; TinyBERT's task distillation adds augmented
    data the same way): sentence pairs of an LM corpus's train split, [CLS] A [SEP] B [SEP] as in
    `sentence_pair_features`, labelled UNLABELLED so only the teacher's targets train on them; `hard_fraction` of
    the non-next partners come from A's own text (same topic), like embedded-pair's hard negatives. Pair
    classification only: KroneckerBERT itself distils on the task data alone (docs/sources.md §1.6, Table 10)."""
    if task.kind != "pair_classification":
        raise KronbenchError(f"data.transfer: a sentence-pair transfer set fits pair classification, not {task.name} "
                             f"({task.kind})")
    corpus = task_of(transfer_dir)
    if corpus.kind != "lm":
        raise KronbenchError(f"data.transfer: {transfer_dir} holds {corpus.name}; give a prepared LM corpus (e.g. "
                             f"results/data/embedded-lm)")
    pairs = sentence_pair_features(tokenizer, _train_texts(transfer_dir), task.max_length, seed=seed, copies=copies,
                                   hard_fraction=hard_fraction)
    return [{**f, "labels": UNLABELLED} for f in pairs]


def _train_texts(data_dir) -> list[str]:
    return [r["text"] for r in read_split(data_dir, "train")]


def corpus_dataset(data_dir, tokenizer, block_size: int, wrap: bool, fmt: str = "blocks", seed: int = 0,
                   copies: int = 1, hard_fraction: float = 0.0, tokens=None) -> list[dict]:
    """The KD pre-training corpus from a prepared LM task's train split: LM blocks of `block_size` tokens, or
    (BERT) BERT's sentence-pair input format, [CLS] A [SEP] B [SEP] (data.format = sentence_pairs).

    `tokens`: a `kronbench tokenize-corpus` file of this corpus and tokenizer (its blocks, or the tokenised
    sentences the pairs are drawn from), read instead of tokenising here; the same features either way."""
    from kronbench.data import tokens as cached

    task = task_of(data_dir)
    if task.kind != "lm":
        raise KronbenchError(f"KD pre-training needs an LM corpus; {data_dir} holds {task.name} ({task.kind})")
    if fmt == "blocks":
        if tokens:
            return cached.load_blocks(tokens, data_dir, tokenizer, block_size, wrap)
        return lm_features(tokenizer, _train_texts(data_dir), block_size, wrap=wrap)
    if fmt == "sentence_pairs":
        if not wrap:
            raise KronbenchError("data.format: sentence_pairs is BERT's input format; GPT-2 pre-trains on blocks")
        docs = (cached.load_sentences(tokens, data_dir, tokenizer) if tokens
                else sentence_docs(tokenizer, _train_texts(data_dir)))
        return pair_features(docs, tokenizer, block_size, seed=seed, copies=copies, hard_fraction=hard_fraction)
    raise KronbenchError(f"data.format: {fmt!r}; use one of {', '.join(CORPUS_FORMATS)}")


def loss_settings(loss: dict | None, default_preset: str) -> dict:
    loss = dict(loss or {})
    weights = loss.pop("weights", default_preset)
    if isinstance(weights, str):
        if weights not in PRESETS:
            raise KronbenchError(f"loss.weights: unknown preset {weights!r}; use one of {', '.join(PRESETS)} or a "
                                 f"mapping term -> weight")
        weights = PRESETS[weights]
    known = {"layer_map", "temperature", "normalize", "kd_form", "t_squared", "mlm_prob", "teacher_precision"}
    unknown = sorted(set(loss) - known)
    if unknown:
        raise KronbenchError(f"loss: unknown key(s) {unknown}; valid: weights, {', '.join(sorted(known))}")
    return {"weights": dict(weights), **loss}


# --------------------------------------------------------------------------------------------- stages
def finetune_teacher(model: str, data_dir, run_dir, train_cfg: dict, meta: dict | None = None,
                     keep_intermediate: bool = False) -> dict:
    """Fine-tune a pretrained model (hub id, local dir or embedded name) on a prepared task."""
    task = task_of(data_dir)
    cfg = LoopConfig.from_dict(train_cfg, "train")
    torch.manual_seed(cfg.seed)  # the new head's initialisation
    net, tok = checkpoints.load(model, head=HEAD_OF_KIND[task.kind], num_labels=_num_labels(task)
                                if task.kind != "span_qa" and task.kind != "lm" else None)
    data = task_dataset(task, data_dir, tok, "train")
    parent = checkpoints.run_info(model) if os.path.isdir(model) else {}  # e.g. the self-pretrained GPT-2
    info = {**parent, "model": (meta or {}).get("model", parent.get("model", model)), "method": "teacher",
            "preset": None, "task": task.name}
    config = {"stage": "finetune-teacher", "model": model, "task": task.name, "train": train_cfg}
    return run_stage(net, tok, data, objectives.supervised(task.kind), cfg, Path(run_dir), "finetune-teacher", info,
                config, keep_intermediate=keep_intermediate)


def pretrain_lm(arch: str, data_dir, run_dir, train_cfg: dict, vocab_size: int = 8192, block_size: int = 128,
                meta: dict | None = None, keep_intermediate: bool = False) -> dict:
    """Pre-train a GPT-2-architecture model from scratch on a prepared LM corpus (the embedded GPT-2 teacher).

    The byte-level BPE tokenizer is trained on the same train split first (no GPT-2 vocabulary ships offline).
    """
    from transformers import GPT2LMHeadModel

    from kronbench.models.registry import get_config
    from kronbench.models.tokenizers import train_bpe_tokenizer

    task = task_of(data_dir)
    cfg = LoopConfig.from_dict(train_cfg, "train")
    texts = [r["text"] for r in read_split(data_dir, "train")]
    tok = train_bpe_tokenizer(texts, vocab_size=vocab_size)
    config = get_config(arch)
    if config.model_type != "gpt2":
        raise KronbenchError(f"pretrain-lm builds GPT-2 architectures; {arch!r} is {config.model_type}")
    config.vocab_size = len(tok)
    config.bos_token_id = config.eos_token_id = config.pad_token_id = tok.eos_token_id
    if block_size > config.n_positions:
        raise KronbenchError(f"block_size {block_size} exceeds {arch}'s context n_positions={config.n_positions}")
    torch.manual_seed(cfg.seed)
    net = GPT2LMHeadModel(config)
    data = lm_features(tok, texts, block_size)
    info = {"model": (meta or {}).get("model", arch), "method": "teacher", "preset": None, "task": task.name,
            "label": "self-pretrained"}
    run_config = {"stage": "pretrain-lm", "arch": arch, "task": task.name, "vocab_size": vocab_size,
                  "block_size": block_size, "train": train_cfg}
    return run_stage(net, tok, data, objectives.supervised("lm"), cfg, Path(run_dir), "pretrain-lm", info, run_config,
                keep_intermediate=keep_intermediate)


def compress(model: str, preset: str, run_dir, head: str | None = None, init: str = "nkp",
             meta: dict | None = None, data=None, calibration: dict | None = None) -> dict:
    """The stage-1 student: a Kronecker student of `model`'s weights, saved. init "nkp" is KroneckerBERT §3.4's
    nearest Kronecker product; "activation" refits it to each layer's outputs on calibration text from `data`
    (a prepared LM corpus; kronbench.models.calibrate); "random" only builds the shapes. With `data`, summary.json
    gets `errors`: per module and family, weight and held-out output error of NKP and of the init used."""
    from kronbench.data.calibration import DEFAULTS, load_calibration
    from kronbench.kron import orders
    from kronbench.models import calibrate, surgery
    from kronbench.models.counting import count_flops, count_params

    if init not in ("nkp", "activation", "random"):
        raise KronbenchError(f"init: {init!r}; use nkp, activation or random")
    t0, tune0 = time.perf_counter(), orders.tune_seconds()
    net, tok = checkpoints.load(model, head=head)
    dense_params = count_params(net)
    cal_settings = {k: v for k, v in {**DEFAULTS, **(calibration or {})}.items() if k != "corpus"}
    calib = load_calibration(data, tok, cal_settings) if init == "activation" or data is not None else None
    teacher = calibrate.teacher_copy(net) if calib is not None else None
    # rank: auto families get the shape and rank of lowest calibration error at their cf budget (net is dense here)
    chosen, shapes = calibrate.choose_shapes(net, preset, calib, init) if init != "random" else (preset, {})
    spec = surgery.kroneckerize(net, chosen, init="random" if init == "random" else "nkp")
    errors = None
    if init == "activation":
        errors = calibrate.fit_to_activations(net, teacher, calib, target=cal_settings["target"],
                                              ridge=cal_settings["ridge"], iters=cal_settings["iters"],
                                              sequential=cal_settings["sequential"])
    elif init == "nkp" and calib is not None:
        errors = calibrate.nkp_report(net, teacher, calib)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"stage": "compress", "model": model, "preset": preset, "init": init, "head": head,
              **({"calibration": cal_settings} if calib is not None else {})}
    parent = checkpoints.run_info(model) if os.path.isdir(model) else {}
    tuned = orders.tune_seconds() - tune0  # none unless something ran a Kronecker forward
    seconds = round(time.perf_counter() - t0 - tuned, 2)
    info = {"model": (meta or {}).get("model", parent.get("model", model)), "method": "kronecker",
            "preset": preset, "spec": spec, "init": init, "task": parent.get("task"), "label": parent.get("label"),
            "lineage": [*parent.get("lineage", []), {"stage": "compress", "config_hash": config_hash(config),
                                                     "init": init, "train_seconds": seconds,
                                                     "tune_seconds": round(tuned, 2)}]}
    info["train_seconds"] = round(sum(x["train_seconds"] for x in info["lineage"]), 2)
    info["tune_seconds"] = lineage_tune_seconds(info["lineage"])
    info["config_hash"] = config_hash(config)
    write_json(run_dir / "config.json", config)
    if is_main():
        checkpoints.save(net.eval(), tok, run_dir / "model", info)
    summary = {"stage": "compress", "init": init, "params_dense": dense_params, "params": count_params(net),
               "flops": count_flops(net), "spec": spec, "seconds": seconds, "config_hash": config_hash(config)}
    if errors is not None:
        summary["errors"] = errors
    if shapes:
        summary["rank_auto"] = shapes
    write_json(run_dir / "summary.json", summary)
    barrier()
    return summary


def distill(stage: str, student: str, teacher: str | None, data_dir, run_dir, train_cfg: dict,
            loss: dict | None = None, block_size: int = 128, meta: dict | None = None, format: str = "blocks",
            copies: int = 1, transfer: str | None = None, hard_fraction: float = 0.0,
            keep_intermediate: bool = False, tokens: str | None = None) -> dict:
    """KD pre-training (stage="pretrain", on an LM corpus) or task distillation (stage="task").

    pretrain data: `format` blocks (LM blocks of `block_size`) or sentence_pairs (BERT's [CLS] A [SEP] B [SEP]
    format, `copies` passes with fresh random partners, `hard_fraction` of the random ones from A's own text;
    corpus_dataset; `tokens`, a `kronbench tokenize-corpus` file of it, saves tokenising the corpus here).
    task data: `transfer` adds an unlabelled transfer set (`copies` passes) from a prepared LM corpus
    (transfer_dataset): the KD terms train on it, CE on the task's labelled rows only.
    pretrain: the teacher is the pretrained model the student was compressed from; terms default to the
    family's paper preset (KroneckerBERT stage 1 for BERT, KnGPT2 for GPT-2); terms needing a head the teacher
    lacks (MiniLM ships no MLM head) are dropped with a note in the config.
    task: the teacher is the fine-tuned teacher; the student gets the task head, initialised from the teacher's
    prediction layer (KroneckerBERT §3.4). `teacher=None` with weights {ce: 1} is plain fine-tuning of the
    student (the no-task-KD ablation).
    """
    from kronbench.models.families import FAMILIES
    from kronbench.models.registry import family_of

    if stage not in ("pretrain", "task"):
        raise KronbenchError(f"distill stage {stage!r}: use 'pretrain' or 'task'")
    if not (isinstance(copies, int) and copies >= 1):
        raise KronbenchError(f"data.copies: {copies!r}; give the number of passes, an integer >= 1")
    if not (isinstance(hard_fraction, (int, float)) and 0.0 <= hard_fraction <= 1.0):
        raise KronbenchError(f"data.hard_fraction: {hard_fraction!r}; give the share of random partners drawn from "
                             "A's own text, between 0 and 1")
    cfg = LoopConfig.from_dict(train_cfg, "train")
    torch.manual_seed(cfg.seed)
    parent = checkpoints.run_info(student)
    if stage == "pretrain":
        s_net, tok = checkpoints.load(student)
        family = FAMILIES[family_of(s_net.config)]
        t_net, _ = checkpoints.load(teacher) if teacher else (None, None)
        kind = "lm" if family.causal else "bert_lm"  # next-token LM, or BERT's masked LM on wrapped blocks
        data = corpus_dataset(data_dir, tok, block_size, wrap=not family.causal, fmt=format, seed=cfg.seed,
                              copies=copies, hard_fraction=hard_fraction, tokens=tokens)
        settings = loss_settings(loss, family.lm_preset)
        dropped = drop_headless(settings["weights"], s_net, t_net)
        task_name = task_of(data_dir).name
    else:
        if tokens:
            raise KronbenchError("--tokens is the tokenised KD corpus of --stage pretrain; the task stage reads "
                                 "the task's own data")
        task = task_of(data_dir)
        kind, task_name = task.kind, task.name
        t_net, _ = checkpoints.load(teacher) if teacher else (None, None)
        s_net, tok = checkpoints.load(student, head=HEAD_OF_KIND[task.kind],
                                      num_labels=_num_labels(task) if task.kind not in ("span_qa", "lm") else None)
        if t_net is not None:
            copy_head(s_net, t_net)
        data = task_dataset(task, data_dir, tok, "train")
        if transfer:
            if t_net is None:
                raise KronbenchError("data.transfer: an unlabelled transfer set needs --teacher (its targets)")
            data = data + transfer_dataset(task, transfer, tok, seed=cfg.seed, copies=copies,
                                           hard_fraction=hard_fraction)
        settings = loss_settings(loss, FAMILIES[family_of(s_net.config)].task_preset)
        dropped = []
    weights = settings.pop("weights")
    distil_layers = getattr(s_net.config, "kronbench_distil_layers", None)  # a shallower distil student
    if t_net is not None and distil_layers is not None and "layer_map" not in settings:
        settings["layer_map"] = list(distil_layers)
    if t_net is None and set(k for k, w in weights.items() if w) - {"ce", "lm"}:
        raise KronbenchError(f"distill-{stage}: loss terms {sorted(weights)} need --teacher")
    mlm = None
    if kind == "bert_lm" and weights.get("lm"):
        mlm = {"tokenizer": tok, "prob": settings.get("mlm_prob", 0.15)}
    settings.pop("mlm_prob", None)
    if t_net is None:
        objective = objectives.supervised(kind)
    else:
        objective = objectives.ilkd(t_net, kind, weights, mlm=mlm, seed=cfg.seed, **settings)
    info = {"model": (meta or {}).get("model", parent.get("model", student)),
            "method": (meta or {}).get("method", parent.get("method", "kronecker")),
            "preset": parent.get("preset"), "spec": parent.get("spec"), "task": task_name,
            "label": parent.get("label"), "lineage": parent.get("lineage", [])}
    config = {"stage": f"distill-{stage}", "student": student, "teacher": teacher, "task": task_name,
              "weights": weights, "dropped_terms": dropped, **settings, "block_size": block_size, "train": train_cfg,
              **({"format": format, "copies": copies} if format != "blocks" else {}),
              **({"transfer": str(transfer), "copies": copies} if transfer else {}),
              **({"hard_fraction": hard_fraction} if hard_fraction else {})}
    return run_stage(s_net, tok, data, objective, cfg, Path(run_dir), f"distill-{stage}", info, config, teacher=t_net,
                keep_intermediate=keep_intermediate)


def distill_pretrain(student: str, teacher: str, data_dir, run_dir, train_cfg: dict, loss: dict | None = None,
                     meta: dict | None = None, keep_intermediate: bool = False, tokens: str | None = None,
                     **data) -> dict:
    """Rule distill_pretrain: KD pre-training of `student` against the pretrained `teacher` on an LM corpus
    (KroneckerBERT stage 1, KnGPT2's ILKD pre-training); `data`: the settings' data section."""
    return distill("pretrain", student, teacher, data_dir, run_dir, train_cfg, loss=loss, meta=meta,
                   keep_intermediate=keep_intermediate, tokens=tokens, **data)


def distill_task(student: str, teacher: str | None, data_dir, run_dir, train_cfg: dict, loss: dict | None = None,
                 meta: dict | None = None, keep_intermediate: bool = False, **data) -> dict:
    """Rule distill_task: task ILKD of `student` from the fine-tuned `teacher` (KroneckerBERT stage 2, Eq. 14), or
    plain fine-tuning with teacher None and loss weights {ce: 1} (the no-task-KD ablations)."""
    return distill("task", student, teacher, data_dir, run_dir, train_cfg, loss=loss, meta=meta,
                   keep_intermediate=keep_intermediate, **data)


def drop_headless(weights: dict, student: nn.Module, teacher: nn.Module | None) -> list[str]:
    """Remove `lm` / `logit_kd` when student or teacher has no LM head (MiniLM); returns what was dropped."""
    no_head = [m for m in (student, teacher) if m is not None and m.get_output_embeddings() is None]
    dropped = [k for k in ("lm", "logit_kd") if weights.get(k) and no_head]
    for k in dropped:
        weights.pop(k)
    return dropped


def copy_head(student: nn.Module, teacher: nn.Module) -> list[str]:
    """Copy the teacher's prediction layer (and BERT's pooler, which feeds it) into the student (KB §3.4)."""
    prefix = teacher.base_model_prefix + "."
    s_state = student.state_dict()
    copied = []
    for name, value in teacher.state_dict().items():
        is_head = not name.startswith(prefix) or name.startswith(prefix + "pooler.")
        if is_head and name in s_state and s_state[name].shape == value.shape:
            s_state[name] = value.clone()
            copied.append(name)
    if not copied:
        raise KronbenchError(f"no prediction-layer weights of the teacher ({type(teacher).__name__}) fit the "
                             f"student ({type(student).__name__})")
    student.load_state_dict(s_state)
    return copied
