"""Figures from result rows and training logs: score vs params / FLOPs / latency, and training curves.

    df = load_rows("results/all_results.jsonl")
    score_vs(df, "params", "paper_tables/figures")          # score_vs_params_{bert,gpt2}.{png,pdf}
    training_curves({"kb8 mrpc": "results/runs/.../log.jsonl"}, "paper_tables/figures")

Drawn on matplotlib Figure objects with the Agg canvas (no display, no pyplot global state); every file is written
to a temp name and renamed, and always exists: a figure without data says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from kronbench import atomic
from kronbench.data.registry import get_task
from kronbench.errors import KronbenchError
from kronbench.methods import METHODS as RECORDS
from kronbench.models.registry import family
from kronbench.report.io import iter_jsonl
from kronbench.report.tables import METHODS, load_rows, summarize

XS = {"params": ("parameters (M)", 1e6), "flops": ("GFLOPs", 1e9), "latency_ms": ("latency (ms)", 1.0)}
FAMILIES = ("bert", "gpt2")  # always drawn (a "no data" panel where a config has none); others where asked
MARKERS = {name: m.marker for name, m in RECORDS.items()}  # kronbench.methods
LINESTYLES = ("-", "--", ":", "-.")
CYCLE_MARKERS = ("o", "s", "^", "v", "D", "X", "P")  # 7 markers x 4 line styles: coprime, 28 distinct pairs


def style(i: int) -> dict:
    """The i-th series' colour, line style and marker. Colour alone wraps after 10 (C0..C9) and is lost in
    greyscale print, so line style and marker cycle too, with coprime periods (4, 7): any 28 series differ in
    (line style, marker) and any 20 in colour (tab20)."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": CYCLE_MARKERS[i % len(CYCLE_MARKERS)]}


def score_vs(df: pd.DataFrame, x: str, out_dir, families=FAMILIES) -> list[Path]:
    """Per model family, one panel per task (main metric; split, protocol and source task kept apart), one
    marker per method, mean ± std over seeds; the teacher is a large gold star. Methods differ in colour (tab20),
    marker and error-bar line style (style()); a noisy latency is a hollow marker. Writes score_vs_<x>_<family>."""
    if x not in XS:
        raise KronbenchError(f"score_vs: x={x!r} must be one of {', '.join(XS)}")
    label, scale = XS[x]
    s = summarize(df)
    s = s[(s["n"] > 0) & s[x].notna()]
    s = s.loc[[m == get_task(t).main_metric for t, m in zip(s["task"], s["metric"])]]
    paths = []
    for fam in families:
        f = s[s["model"].map(family) == fam]
        panels = list(f.groupby(["task", "split", "protocol", "source_task"], sort=True))
        ncols = min(3, len(panels)) or 1
        nrows = math.ceil(len(panels) / ncols) or 1
        fig = Figure(figsize=(4.4 * ncols, 3.6 * nrows + 0.6))
        FigureCanvasAgg(fig)
        if not panels:
            _no_data(fig, f"no data: no {fam}-family rows with a main-metric score and {x}")
        handles = {}
        series = {m: i for i, m in enumerate(sorted(set(f["method"]), key=lambda m: (_rank(m), m)))}
        for i, ((task, split, protocol, source_task), g) in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            several = g["model"].nunique() > 1
            for method, h in sorted(g.groupby("method"), key=lambda kv: series[kv[0]]):
                teacher, look = method == "teacher", style(series[method])
                for hollow, p in h.groupby(_noisy(h, x)):  # a noisy latency: a hollow marker
                    bars = ax.errorbar(
                        p[x] / scale, p["mean"], yerr=p["std"].fillna(0.0), linestyle="none",
                        marker=MARKERS.get(method, look["marker"]), markersize=16 if teacher else 7, capsize=2,
                        label=method, color="gold" if teacher else look["color"], markeredgecolor="black",
                        markerfacecolor="none" if hollow else None, zorder=3 if teacher else 2)
                    for bar in bars.lines[2]:
                        bar.set_linestyle(look["linestyle"])  # error bars differ by line style, not colour alone
                    if not hollow or method not in handles:
                        handles[method] = bars
                for r in h.itertuples():
                    text = r.preset or ("" if teacher and not several else r.model)
                    text = f"{r.model}:{text}" if several and r.preset else text
                    ax.annotate(text, (getattr(r, x) / scale, r.mean), fontsize=7, xytext=(4, 4),
                                textcoords="offset points")
            metric = g["metric"].iloc[0]
            title = (f"{source_task}→" if source_task else "") + f"{task} ({split})" + (f" [{protocol}]" if protocol
                                                                                       else "")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(label)
            ax.set_ylabel(metric + (" (lower is better)" if metric == "perplexity" else ""))
            if x in ("params", "flops"):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short log ranges
            ax.grid(alpha=0.3)
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 8),
                       fontsize=8, frameon=False)
            hollow = "; hollow marker = noisy latency" if any(_noisy(f, x)) else ""
            fig.suptitle(f"{fam} family: main metric vs {label} (mean ± std over seeds){hollow}", fontsize=10)
            fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        paths += _save(fig, out_dir, f"score_vs_{x}_{fam}")
    return paths


def training_curves(log_paths: dict, out_dir) -> list[Path]:
    """Loss (and lr, if logged) vs step, one line per label, from JSONL logs {"step": int, "loss": float, "lr": ...};
    lines without a loss (e.g. eval records) are skipped. Writes training_curves.{png,pdf}."""
    curves = {label: _read_log(path) for label, path in log_paths.items()}
    fig = curves_figure(curves)
    if not any(len(c) for c in curves.values()):
        _no_data(fig, "no data: no training log lines with step and loss" + ("" if log_paths else " (no logs given)"))
    return _save(fig, out_dir, "training_curves")


def curves_figure(curves: dict) -> Figure:
    """The training-curves figure of {label: DataFrame(step, loss, lr)}; each curve its own style(i) (colour,
    line style and a marker on ~8 of its points), so a dozen curves stay apart."""
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    if not any(len(c) for c in curves.values()):
        return fig
    loss, lr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (label, c) in enumerate(curves.items()):
        if len(c):
            look = dict(style(i), markevery=max(1, len(c) // 8), markersize=4, linewidth=1, label=label)
            loss.plot(c["step"], c["loss"], **look)
            if c["lr"].notna().any():
                lr.plot(c["step"], c["lr"], **look)
    if all((c["loss"] > 0).all() for c in curves.values()):
        loss.set_yscale("log")
    for ax, name in ((loss, "loss"), (lr, "learning rate")):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    loss.legend(fontsize=7, ncol=2 if len(curves) > 10 else 1)
    fig.tight_layout()
    return fig


def figures(rows_path, logs: dict, out_dir, families=FAMILIES) -> list[Path]:
    """score_vs for params, FLOPs and latency per family (BERT and GPT-2 always) and the training curves: 14 files
    for the two, 6 more per further family."""
    df = load_rows(rows_path)
    return [p for x in XS for p in score_vs(df, x, out_dir, families)] + training_curves(logs, out_dir)


def parse_logs(items: list[str]) -> dict:
    """CLI `--logs label=path ...` -> {label: path}."""
    logs = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise KronbenchError(f"--logs {item!r}: write LABEL=PATH, e.g. kb8-mrpc=results/runs/.../log.jsonl")
        logs[label] = path
    return logs


def _read_log(path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise KronbenchError(f"{path}: no such training log; pass LABEL=PATH of a run's log.jsonl")
    rows = []
    for _, rec in iter_jsonl(path, path.read_text(encoding="utf-8"), "fix or delete the line"):
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and isinstance(rec.get("loss"), (int, float)):
            lr = rec.get("lr")
            rows.append({"step": rec["step"], "loss": float(rec["loss"]),
                         "lr": float(lr) if isinstance(lr, (int, float)) else math.nan})
    return pd.DataFrame(rows, columns=["step", "loss", "lr"])


def _noisy(s: pd.DataFrame, x: str):
    """Per summary row: was its latency timing noisy (summarize's latency_noisy)? Only for latency plots."""
    if x != "latency_ms":
        return [False] * len(s)
    return [v is True or v == 1 for v in s["latency_noisy"]]


def _no_data(fig: Figure, text: str) -> None:
    fig.set_size_inches(6, 2)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)


def _rank(method: str) -> int:
    return METHODS.index(method) if method in METHODS else len(METHODS)


def _save(fig: Figure, out_dir, name: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        with atomic.file(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    return paths

