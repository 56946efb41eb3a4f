"""The `kronbench` command. Every workflow rule calls exactly one subcommand defined here.

Subcommands are thin argument parsers around one library function each; imports happen inside the handlers so
`kronbench --help` stays fast (torch + transformers cost ~5 s to import).
"""

from __future__ import annotations

import argparse
import json
import sys


from kronbench.errors import KronbenchError


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------------------------- count, bench-kron
def _add_count(sub) -> None:
    p = sub.add_parser("count", help="params and FLOPs of a compressed architecture (config only, offline)")
    p.add_argument("--model", required=True, help="bert-base-uncased, gpt2, distilgpt2, minilm-l6")
    p.add_argument("--preset", required=True, help="kb8, kb21, kb5, kngpt2, cf=<x>, or a spec .yaml/.json file")
    p.add_argument("--seq", type=int, default=128, help="tokens per sequence for FLOPs (paper: 128)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run_count)


def _run_count(args) -> None:
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
    p.add_argument("--repeats", type=int, default=20, help="timed repeats (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-encoder", action="store_true", help="skip the whole-encoder comparison")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run_bench_kron)


def _run_bench_kron(args) -> None:
    from kronbench.kron.bench import bench_kron

    rows = bench_kron(
        presets=[p.strip() for p in args.preset.split(",") if p.strip()],
        tokens=args.tokens,
        repeats=args.repeats,
        threads=args.threads,
        encoder=not args.no_encoder,
    )
    if args.json:
        _print_json(rows)
        return
    print(f"{'name':34s} {'m x n':>11s} {'a_shape':>10s} {'dense ms':>9s} {'kron ms':>9s} {'speedup':>8s} "
          f"{'flop ratio':>10s}  order")
    for r in rows:
        mn = f"{r['m']}x{r['n']}" if "m" in r else ""
        a = "x".join(map(str, r["a_shape"])) if "a_shape" in r else ""
        print(f"{r['name']:34s} {mn:>11s} {a:>10s} {r['dense_ms']:9.2f} {r['kron_ms']:9.2f} {r['speedup']:8.2f} "
              f"{r['flop_ratio']:10.2f}  {r.get('order', '')}")


# ------------------------------------------------------------------------------------------ tasks, data, score
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


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="prepare task data")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    q = data_sub.add_parser("prepare", help="write <out>/<split>.parquet and manifest.json for one task")
    q.add_argument("task", metavar="TASK", help="a task name (see `kronbench tasks`)")
    q.add_argument("--source", required=True, choices=["hub", "local", "embedded"])
    q.add_argument("--data-dir", help="with --source local: the official files (see kronbench/data/tasks/README.md)")
    q.add_argument("--out", required=True, help="output directory (replaced atomically)")
    q.set_defaults(func=_run_data_prepare)


def _run_data_prepare(args) -> None:
    from kronbench.data.prepare import prepare

    manifest = prepare(args.task, args.source, args.out, data_dir=args.data_dir)
    rows = ", ".join(f"{split} {n}" for split, n in manifest["rows"].items())
    print(f"{args.out}: {manifest['task']} v{manifest['version']} from {args.source}: {rows} rows")


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


# ------------------------------------------------------------------------------------------------------ table
def _add_table(sub) -> None:
    p = sub.add_parser("table", help="write a paper table (Markdown, CSV, LaTeX) from result files")
    p.add_argument("which", choices=["presets"], help="presets: Table 1 analog from `kronbench count --json` files")
    p.add_argument("inputs", nargs="+", help="input JSON files")
    p.add_argument("--out", required=True, help="output prefix, e.g. paper_tables/presets")
    p.set_defaults(func=_run_table)


def _run_table(args) -> None:
    from kronbench.report.io import write_table
    from kronbench.report.presets import NOTE, load_rows, presets_table

    rows = load_rows(args.inputs)
    write_table(presets_table(rows), args.out, "Compression presets (KroneckerBERT Table 1 analog)",
                NOTE.format(seq=rows[0]["seq"]))


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kronbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_count, _add_bench_kron, _add_table, _add_tasks, _add_data, _add_score):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
