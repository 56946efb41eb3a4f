"""Result tables as pure functions of result rows (kronbench.rows), next to the papers' reported numbers.

    rows = load_rows("results/all_results.jsonl")    # one JSON object per line
    glue_table(rows)                                 # ours: mean ± std over seeds; papers: reported.yaml
    table_all("results/all_results.jsonl", "paper_tables/")

Scores are used as stored: kronbench.evaluate.metrics already returns them on the papers' scale (accuracy, f1,
mcc, pearson, spearman, exact_match x100; perplexity raw), so no conversion happens here.

Every table has one row per (model, method, preset[, split, protocol]) of ours ("source: ours") and one per
printed paper row ("source: KroneckerBERT Table 2", ...), a score column per task and metric, its Δ vs the
teacher of the same model (same source, task, split, metric, protocol) and the retention ret% = student/teacher
x100 (teacher/student x100 for perplexity). Runs that failed show their reason in the cell; missing cells "–".
A 'chance' row gives each classification/regression column the split's all-majority score and its SE; a score of
ours within 2 SE of it reads '≈ chance' and, like any score against a teacher not clear of chance, has no ret%.
Markdown/LaTeX split tables wider than PART task score groups into parts (column_parts); the CSV stays whole.
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from kronbench.data.registry import get_task
from kronbench.errors import KronbenchError
from kronbench.methods import METHODS as ALL_METHODS
from kronbench.report.io import iter_jsonl, write_table
from kronbench.rows import CELL, REQUIRED, STATUSES

OURS = "ours"
METHODS = tuple(ALL_METHODS)  # table order: the registry's (kronbench.methods)
KEYS = list(CELL)  # one summary cell
MATCH = ["task", "split", "metric", "protocol", "source_task"]  # what a student shares with its teacher cell
# means over seeds; rows without them (older runs) give NaN
NUMBERS = ("params", "params_no_head", "params_no_embedding", "flops", "latency_ms", "latency_iqr_ms",
           "latency_vs_teacher", "train_seconds", "tune_seconds", "chance", "chance_se")
COLUMNS = [*KEYS, "seed", "value", *NUMBERS, "latency_noisy", "latency_setup", "config_hash", "git_sha", "status",
           "reason"]
SUMMARY = [*KEYS, "mean", "std", "n", "failed", *NUMBERS, "latency_noisy", "latency_setup"]
GLUE_ORDER = ("mnli", "mnli-mm", "sst2", "mrpc", "cola", "qqp", "qnli", "rte", "stsb", "wnli")  # KB Table 2 order
EMBEDDED_ANALOG = {  # embedded task -> the paper task it stands in for
    "embedded-pair": "MRPC/QQP", "embedded-acceptability": "CoLA", "embedded-similarity": "STS-B",
    "embedded-qa": "SQuAD", "embedded-lm": "WikiText", "embedded-pair-news": "PAWS (OOD transfer)",
    "embedded-lm-news": "OOD LM",
}
REPORTED = "kronbench/report/reported.yaml"
DASH = "–"
CHANCE = "chance"  # the method of each table's chance-level row
PART = 6  # task score groups (score, Δ, ret%) per part of a Markdown/LaTeX table: wider ones overflow a page

NOTE = ("Ours: mean ± std over seeds (ddof=1; ±– when n=1), n = seeds; a later row of the same seed replaces an "
        "earlier one. Scores as kronbench.evaluate.metrics returns them (x100; perplexity raw). Δ = ours − teacher "
        "and ret% = ours / teacher x100, both against the teacher of the same model, source, task, split and "
        "metric (a model without teacher rows, e.g. distilgpt2, uses the teacher named inside it, gpt2). Paper "
        "rows: single runs as printed (reported.yaml); where a paper does not name its metric (MRPC, QQP, STS-B, "
        "PAWS) the number sits in the task's main-metric column. [S] = secondary, unverified. Row 'chance': the "
        "split's all-majority-class score (accuracy = majority share, F1 of class 1 when every prediction is the "
        "majority class, MCC 0; regression: a constant prediction, correlation 0) and SE = the std of the metric "
        "over 200 random permutations of the gold labels (kronbench.evaluate.metrics.chance_levels). A score of "
        "ours within 2 SE of chance reads '≈ chance' (more than 2 SE below: '< chance') and has no ret%; ret% also "
        "needs a positive teacher score more than 2 SE above chance, else it is –.")
LATENCY_NOTE = (" Latency: median of round-robin forwards of every model of a family in one process "
                "(kronbench.evaluate.latency); CPU latency is CPU latency — it does not predict GPU speed-ups. "
                "× teacher latency: ours / the teacher's latency in the same process. * = noisy: the 95 % interval "
                "of the median missed ±3 % or other processes used the CPU during timing; see README "
                "\"Stable numbers\".")


# ----------------------------------------------------------------------------------------------------- rows
def load_rows(path) -> pd.DataFrame:
    """results/all_results.jsonl as a DataFrame (columns COLUMNS plus any extra keys); bad lines fail by number."""
    path = Path(path)
    if not path.is_file():
        raise KronbenchError(f"{path}: no such results file; run the workflow to collect results/runs/*/rows.jsonl "
                             "into it, or pass the right --rows")
    rows = [_check_row(row, f"{path}:{n}")
            for n, row in iter_jsonl(path, path.read_text(encoding="utf-8"), "fix or delete the line")]
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    return df


def _check_row(row, where: str) -> dict:
    if not isinstance(row, dict):
        raise KronbenchError(f"{where}: a result row must be a JSON object, got {type(row).__name__}")
    status = row.get("status") or "ok"
    if status not in STATUSES:
        raise KronbenchError(f"{where}: status {status!r} must be one of {STATUSES}")
    need = REQUIRED + (("metric", "value") if status == "ok" else ("reason",))
    missing = [k for k in need if row.get(k) is None]
    if missing:
        raise KronbenchError(f"{where}: missing key(s) {', '.join(missing)}; every row needs {', '.join(REQUIRED)}, "
                             "an ok row metric and value, a failed/skipped row a reason (kronbench.rows)")
    try:
        task = get_task(row["task"])
    except KronbenchError as e:
        raise KronbenchError(f"{where}: {e}") from None
    value = row.get("value")
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if status == "ok" and not number:
        raise KronbenchError(f"{where}: value {value!r} is not a finite number; a run without a score needs "
                             "status 'failed' and a reason")
    if row.get("metric") is not None and row["metric"] not in task.metrics and not row["metric"].endswith("total"):
        raise KronbenchError(f"{where}: metric {row['metric']!r} is not one of task {task.name}'s {task.metrics} "
                             f"({task.path})")
    return {**row, "status": status}


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Keys as strings ("" = none), source_task from the registry, a failed row without a metric on every metric."""
    missing = [c for c in (*REQUIRED, "metric", "value") if c not in df]
    if missing:
        raise KronbenchError(f"result rows lack column(s) {', '.join(missing)}; build them with load_rows()")
    df = df.copy()
    for c in COLUMNS:
        if c not in df:
            df[c] = None
    df["status"] = df["status"].fillna("ok")
    for c in KEYS:
        df[c] = df[c].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    df["source_task"] = [s or (get_task(t).source_task or "") for s, t in zip(df["source_task"], df["task"])]
    df["metric"] = [m or get_task(t).metrics for m, t in zip(df["metric"], df["task"])]  # list -> exploded below
    return df.explode("metric", ignore_index=True)


def _latest(df: pd.DataFrame) -> pd.DataFrame:
    """The last row per cell and seed; a failure is dropped once the same run (any metric) has an ok row."""
    df = df.drop_duplicates([*KEYS, "seed"], keep="last")
    run = ["model", "method", "preset", "task", "split", "seed"]
    done = set(df.loc[df["status"] == "ok", run].astype(str).itertuples(index=False, name=None))
    superseded = [r in done for r in df[run].astype(str).itertuples(index=False, name=None)]
    return df[(df["status"] == "ok") | ~pd.Series(superseded, index=df.index, dtype=bool)]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, method, preset, task, split, metric, protocol, source_task): mean, std (ddof=1; NaN
    for n=1), n (ok seeds), failed (reasons of runs that did not produce a score), and the mean params, flops,
    latency, train/tune seconds and chance level (NUMBERS); latency_noisy if any seed's timing was noisy (None
    when no row says). Missing keys are "" (e.g. preset of a teacher)."""
    df = _latest(_normalize(df))
    out = []
    for key, g in df.groupby(KEYS, sort=False):
        ok = g[g["status"] == "ok"]
        v = pd.to_numeric(ok["value"], errors="coerce")
        out.append({**dict(zip(KEYS, key)), "mean": v.mean(), "std": v.std(ddof=1), "n": len(v),
                    "failed": _failures(g[g["status"] != "ok"]),
                    **{c: pd.to_numeric(ok[c], errors="coerce").mean() for c in NUMBERS},
                    "latency_noisy": _any(ok["latency_noisy"]),
                    "latency_setup": "; ".join(sorted({str(s) for s in ok["latency_setup"] if s}))})
    return pd.DataFrame(out, columns=SUMMARY)


def _any(values) -> bool | None:
    known = [bool(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return any(known) if known else None


def _failures(g: pd.DataFrame) -> str:
    counts = g.groupby(["status", "reason"], sort=False).size()
    return "; ".join(f"{s}{f' ({k} seeds)' if k > 1 else ''}: {r}" for (s, r), k in counts.items())


# ------------------------------------------------------------------------------------------- reported numbers
@functools.cache
def _reported_yaml() -> dict:
    return yaml.safe_load(resources.files("kronbench.report").joinpath("reported.yaml").read_text(encoding="utf-8"))


ENTRY_KEYS = {"source", "model", "method", "preset", "split", "splits", "protocol", "params_m", "avg", "note", "scores"}


def reported(section: str) -> pd.DataFrame:
    """The papers' rows of one reported.yaml section as summary cells (mean = printed value, n = 0, source =
    the paper table). An entry with no scores (an average only) gives one cell with task ""."""
    entries = _reported_yaml().get(section)
    if not isinstance(entries, list):
        raise KronbenchError(f"{REPORTED}: no list {section!r}; sections: {', '.join(_reported_yaml())}")
    out = []
    for i, e in enumerate(entries):
        where = f"{REPORTED}: {section}[{i}]"
        unknown = set(e) - ENTRY_KEYS
        if unknown or not {"source", "model", "method", "split", "scores"} <= set(e):
            raise KronbenchError(f"{where}: needs source, model, method, split, scores; known keys "
                                 f"{sorted(ENTRY_KEYS)} (got unknown {sorted(unknown)})")
        base = {"source": e["source"], "model": e["model"], "method": e["method"], "preset": e.get("preset") or "",
                "protocol": e.get("protocol") or "", "mean": math.nan, "std": math.nan, "n": 0, "failed": "",
                "params": e["params_m"] * 1e6 if e.get("params_m") is not None else math.nan,
                "avg": e.get("avg"), "note": e.get("note") or "", "order": i + 1}
        cells = [{**base, "task": "", "split": e["split"], "metric": "", "source_task": ""}]
        for task, scores in e["scores"].items():
            try:
                t = get_task(task)
            except KronbenchError as err:
                raise KronbenchError(f"{where}.scores.{task}: {err}") from None
            scores = scores if isinstance(scores, dict) else {t.main_metric: scores}
            for metric, value in scores.items():
                if metric not in t.metrics or not isinstance(value, (int, float)):
                    raise KronbenchError(f"{where}.scores.{task}.{metric}: give a number for one of {t.metrics}")
                cells.append({**base, "task": task, "split": (e.get("splits") or {}).get(task, e["split"]),
                              "metric": metric, "source_task": t.source_task or "", "mean": float(value)})
        out += cells
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------------- the tables
def table_of(task: str) -> str:
    """Which table a task's rows go to: glue, squad, ood or lm (embedded tasks go to their paper analog's)."""
    t = get_task(task)
    if t.kind == "lm":
        return "lm"  # embedded-lm-news too: an OOD LM set is still a perplexity under a protocol
    # Scored with another task's model: a transfer set, except within GLUE (mnli-mm is MNLI's second column)
    if t.group == "ood" or (t.source_task and t.group != "glue"):
        return "ood"
    return "squad" if t.kind == "span_qa" else "glue"


def glue_table(df: pd.DataFrame, reported: bool = True) -> pd.DataFrame:
    """KroneckerBERT Tables 2-4, 7 analog (plus embedded-pair/-acceptability/-similarity), all metrics, an avg."""
    return _table(df, "glue", ("glue_test", "glue_dev") if reported else (), avg=True,
                  rows=["source", "model", "method", "preset", "split"], cols=["task", "metric"],
                  title="GLUE-like tasks (KroneckerBERT Tables 2-4, 7 analog)",
                  note=" avg: ours over the row's tasks' main metrics (k = tasks); papers: as printed, over "
                       "their task set, which differs.")


def squad_table(df: pd.DataFrame, reported: bool = True) -> pd.DataFrame:
    """KroneckerBERT Table 5 analog: SQuAD v1.1/v2.0 (and embedded-qa) EM and F1."""
    return _table(df, "squad", ("squad",) if reported else (), rows=["source", "model", "method", "preset", "split"],
                  cols=["task", "metric"], title="Question answering (KroneckerBERT Table 5 analog)")


def ood_table(df: pd.DataFrame, reported: bool = True) -> pd.DataFrame:
    """KroneckerBERT Table 9 analog: a model fine-tuned on source_task scored on another distribution."""
    return _table(df, "ood", ("ood",) if reported else (), rows=["source", "model", "method", "preset"],
                  cols=["task", "source_task", "metric", "split"],
                  title="Out-of-distribution transfer (KroneckerBERT Table 9 analog)",
                  note=" Columns: source task → scored task, metric (split). KroneckerBERT's IMDb 'dev' number "
                       "sits in the imdb (test) column: IMDb has no dev split.")


def lm_table(df: pd.DataFrame, reported: bool = True) -> pd.DataFrame:
    """Perplexities (KnGPT2 / DistilGPT2 / krony-PT), one row per protocol: protocols never share a cell."""
    return _table(df, "lm", ("lm",) if reported else (),
                  rows=["source", "model", "method", "preset", "split", "protocol"],
                  cols=["task", "source_task", "metric"], lm=True,
                  title="Language modelling perplexity (docs/sources.md §2, §4, §5)",
                  note=" Perplexity: lower is better, so ret% = teacher / ours x100 and Δ > 0 is worse. Compare "
                       "only within one protocol (kronbench/data/tasks/<task>.yaml `protocols`; docs/sources.md §5): "
                       "krony-pt-zeroshot is close to, not equal to, zeroshot-stride. zeroshot-1024: 1024-token "
                       "windows whatever the model's context. non-emb. params: without the token/position "
                       "embeddings (= a tied LM head); the reported rows are GPT-2-family models, not ours: compare "
                       "a row with the teacher of its own model.")


def ablation_table(df: pd.DataFrame, reported: bool = True) -> pd.DataFrame:
    """KroneckerBERT Table 6 analog: the Kronecker pipeline, its ablations and the distil/rosita baselines with
    params, FLOPs, latency and training time, on every task (main metric) where an ablation or baseline ran, and
    each row's backbone params as % of the Kronecker student's of its model and preset (the budget it is compared
    at; heads excluded: averaged over tasks with different heads, an identical student read 100.7 %)."""
    d = df[df["method"].isin(METHODS)]
    d = d[d["task"].isin(set(d.loc[~d["method"].isin(("teacher", "kronecker")), "task"]))]
    table = _table(d, None, ("ablation",) if reported else (), metrics="main", train=True,
                   rows=["source", "model", "method", "preset", "split"],
                   cols=["task", "source_task", "metric", "protocol"],
                   title="Ablations and baselines (KroneckerBERT Table 6 analog)",
                   note=" Main metric of each task. decompose-only: NKP initialisation, task fine-tuning without "
                        "KD; no-kd-pretrain: task KD without KD pre-training; no-task-kd: KD pre-training, task "
                        "fine-tuning without KD. distil (preset L<n>: n of the teacher's blocks): half-depth "
                        "student, KD pre-training, task KD. rosita (preset: the Kronecker preset whose budget its "
                        "targets match): depth and width pruning with KD; its stage fails unless the pruned "
                        "backbone is within 5% of the targets' count. params vs kronecker: backbone params "
                        "(params_no_head) / those of the Kronecker student of the same model and preset x100: the "
                        "task heads differ (3 MNLI classes, 1 STS-B output), so an identical architecture reads "
                        "100.0. train (s): the stages' training time without the one-off Kronecker kernel "
                        "autotuning, which is tune (s). init-nkp / init-activation: the kronecker chain (KD "
                        "pre-training, task ILKD) from a student0 initialised by NKP or fitted to the layers' "
                        "outputs on calibration text, at the same budget; init: how each Kronecker student "
                        "started (stages.compress.init).")
    table.insert(table.columns.get_loc("params (M)") + 1, "params vs kronecker (%)", _vs_kronecker(table, d))
    table.insert(table.columns.get_loc("preset") + 1, "init", _inits(table, d))
    return table


def _inits(table: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """Per table row of ours: the rows' `init` (nkp, activation) where the model had a compress stage, else DASH."""
    col = df["init"] if "init" in df else pd.Series([None] * len(df), index=df.index)
    seen = {}
    for (model, method, preset), v in zip(zip(df["model"], df["method"], df["preset"]), col):
        if isinstance(v, str):
            seen.setdefault((model, method, preset), v)
    return [seen.get((r["model"], r["method"], r["preset"]), DASH) if r["source"] == OURS else DASH
            for r in table.to_dict("records")]


def _vs_kronecker(table: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """Per table row of ours: backbone params (params_no_head) / the Kronecker student's (same model, preset) x100,
    else DASH. Whole-model params would mix task heads (a 3-class head is larger than a 1-output one)."""
    s = summarize(df) if len(df) else pd.DataFrame(columns=SUMMARY)
    params = s.groupby(["model", "method", "preset"])["params_no_head"].mean().to_dict()
    out = []
    for r in table.to_dict("records"):
        mine, kron = params.get((r["model"], r["method"], r["preset"])), params.get((r["model"], "kronecker",
                                                                                    r["preset"]))
        ok = r["source"] == OURS and mine is not None and kron and not (math.isnan(mine) or math.isnan(kron))
        out.append(f"{100 * mine / kron:.1f}" if ok else DASH)
    return out


def _table(df, kind, sections, rows, cols, title, note="", metrics="all", avg=False, train=False,
           lm=False) -> pd.DataFrame:
    s = summarize(df)
    if kind is not None:
        s = s[s["task"].map(table_of) == kind]
    s = s.assign(source=OURS, avg=None, note="", order=0)
    s = pd.concat([s, _chance_cells(s)], ignore_index=True) if s["chance"].notna().any() else s
    paper = [reported(x).assign(order=lambda d, i=i: d["order"] + 1000 * i) for i, x in enumerate(sections)]
    if sections == ("ablation",):
        paper = [p[p["method"].isin(METHODS)] for p in paper]
    parts = [x for x in (s, *paper) if len(x)]  # concat of empty frames is deprecated in pandas
    cells = pd.concat(parts, ignore_index=True) if parts else s
    if metrics == "main":
        cells = cells.loc[[t == "" or m == get_task(t).main_metric for t, m in zip(cells["task"], cells["metric"])]]
    table = _wide(cells, rows, cols, avg=avg, train=train, lm=lm)
    setups = sorted({x for v in s["latency_setup"] for x in v.split("; ") if x})
    table.attrs.update(title=title, ours=int((s["method"] != CHANCE).sum()),
                       note=NOTE + note + (f" Latency: {'; '.join(setups)}." if setups else "") + LATENCY_NOTE
                       + _analogs(s))
    return table


def _chance_cells(s: pd.DataFrame) -> pd.DataFrame:
    """The chance-level row's cells: per task, split, metric (protocol, source task) the mean chance and SE of
    our cells there (one split has one chance level; the mean only smooths float noise)."""
    c = s[s["chance"].notna()]
    out = c.groupby(MATCH, sort=False)[["chance", "chance_se"]].mean().reset_index()
    return out.assign(model="", method=CHANCE, preset="", mean=math.nan, std=math.nan, n=0, failed="",
                      latency_setup="", source=OURS, avg=None, note="", order=0)


def _analogs(s: pd.DataFrame) -> str:
    used = [t for t in EMBEDDED_ANALOG if t in set(s["task"])]
    return (" Embedded analogs: " + ", ".join(f"{t} ~ {EMBEDDED_ANALOG[t]}" for t in used) + ".") if used else ""


def _wide(cells: pd.DataFrame, rows: list[str], cols: list[str], avg=False, train=False, lm=False) -> pd.DataFrame:
    """One output row per distinct `rows` key; per distinct `cols` key a score, Δ and ret% column. Score columns
    without any score (every cell –) are dropped; attrs["scores"] lists the kept score columns in order."""
    recs = cells.to_dict("records")
    teacher = {(r["source"], r["model"], *(r[k] for k in MATCH)): r["mean"] for r in recs
               if r["method"] == "teacher" and r["task"] and not math.isnan(r["mean"])}
    levels = {tuple(r[k] for k in MATCH): (r["chance"], r["chance_se"]) for r in recs if r["method"] == CHANCE}
    teachers = {}  # source -> models with any teacher row (a failed one included: no fallback for those)
    for r in recs:
        if r["method"] == "teacher":
            teachers.setdefault(r["source"], set()).add(r["model"])
    table, numbers, order, colkey = {}, {}, {}, {}
    for r in recs:
        rk = tuple(r[k] for k in rows)
        row = table.setdefault(rk, {k: r[k] for k in rows})
        num = numbers.setdefault(rk, {c: [] for c in (*_ROW_NUMBERS, "latency_noisy", "main")})
        order.setdefault(rk, (r["order"], r["model"], _rank(r["method"]), r["preset"], *(str(r[k]) for k in rows)))
        if r["source"] != OURS:
            row.update(avg=DASH if pd.isna(r["avg"]) else f"{r['avg']:g}", note=r["note"])
        for c in (*_ROW_NUMBERS, "latency_noisy"):
            if r.get(c) is not None and not pd.isna(r[c]):
                num[c].append(r[c])
        if not r["task"]:
            continue
        task = get_task(r["task"])
        if r["metric"] not in task.metrics:
            continue  # counts such as HasAns_total
        label = _label(r, cols)
        colkey[label] = (_task_rank(r["task"]), r["source_task"], r["task"], _metric_rank(task, r["metric"]),
                         r["split"], r["protocol"])
        level = levels.get(tuple(r[k] for k in MATCH))
        if r["method"] == CHANCE:
            row[label] = _chance_cell(r)
            continue
        flag = _vs_chance(r["mean"], level)
        row[label] = _cell(r, flag)
        if math.isnan(r["mean"]):
            continue
        if r["metric"] == task.main_metric and r["source"] == OURS:
            num["main"].append(r["mean"])
        t = _teacher(r, teacher, teachers)
        if t is not None:
            row[label + " Δ"] = f"{r['mean'] - t:+.2f}"
            row[label + " ret%"] = _retention(r, t, flag, level)
    for rk, row in table.items():
        num = numbers[rk]
        mean = lambda c, scale: f"{sum(num[c]) / len(num[c]) / scale:.2f}" if num[c] else DASH  # noqa: E731
        noisy = "*" if num["latency_ms"] and any(num["latency_noisy"]) else ""
        row.update({"params (M)": mean("params", 1e6), "non-emb. params (M)": mean("params_no_embedding", 1e6),
                    "GFLOPs": mean("flops", 1e9),
                    "latency (ms)": mean("latency_ms", 1) + noisy, "× teacher latency": mean("latency_vs_teacher", 1)})
        if train:
            row.update({"train (s)": mean("train_seconds", 1), "tune (s)": mean("tune_seconds", 1)})
        if avg and row["source"] == OURS:
            m = num["main"]
            row["avg"] = f"{sum(m) / len(m):.2f} (k={len(m)})" if m else DASH
    labels = sorted(colkey, key=colkey.get)
    scores = [x for lab in labels for x in (lab, lab + " Δ", lab + " ret%")]
    columns = [*rows, "params (M)", *(["non-emb. params (M)"] if lm else []), "GFLOPs", "latency (ms)",
               "× teacher latency", *(["train (s)", "tune (s)"] if train else []), *scores, *(["avg"] if avg else []), "note"]
    out = pd.DataFrame([table[k] for k in sorted(table, key=order.get)], columns=columns, dtype=object).fillna(DASH)
    out = out.replace("", DASH)
    scored = out[out["method"] != CHANCE] if "method" in out else out
    empty = [lab for lab in labels if (scored[lab] == DASH).all()]  # the chance row alone is no score
    out = out.drop(columns=[x for lab in empty for x in (lab, lab + " Δ", lab + " ret%")])
    out = out.drop(columns=[c for c in out if c.endswith((" Δ", " ret%")) and (out[c] == DASH).all()])
    out.attrs["scores"] = [lab for lab in labels if lab not in empty]
    return out


_ROW_NUMBERS = ("params", "params_no_embedding", "flops", "latency_ms", "latency_vs_teacher", "train_seconds",
                "tune_seconds")


def _vs_chance(mean: float, level) -> str:
    """'≈ chance' within 2 SE of the split's chance level, '< chance' more than 2 SE below, else ''. 2 SE of the
    no-information spread: a student scoring the majority class (issue 18's '75 % retention') must not pass."""
    if level is None or math.isnan(mean) or pd.isna(level[0]) or pd.isna(level[1]):
        return ""
    chance, se = level
    if abs(mean - chance) <= 2 * se:
        return "≈ chance"
    return "< chance" if mean < chance else ""


def _retention(r: dict, t: float, flag: str, level) -> str:
    """ret% only where it means something: a positive teacher score clear of chance, and a positive score of
    ours clear of chance (a negative STS-B teacher gave 612 % and -527 %). Perplexity: teacher / ours."""
    if flag or _vs_chance(t, level) or not (t > 0 and r["mean"] > 0):
        return DASH
    ratio = (t / r["mean"]) if r["metric"] == "perplexity" else (r["mean"] / t)
    return f"{100 * ratio:.1f}"


def _teacher(r: dict, teacher: dict, teachers: dict):
    """The teacher's mean for this cell: same source and model; a model with no teacher rows at all (e.g.
    distilgpt2) falls back to the one teacher whose name it contains (gpt2)."""
    models = teachers.get(r["source"], set())
    if r["model"] in models:
        model = r["model"]
    else:
        inside = [m for m in models if m in r["model"]]
        model = inside[0] if len(inside) == 1 else None
    return teacher.get((r["source"], model, *(r[k] for k in MATCH)))


def _cell(r: dict, flag: str = "") -> str:
    """Ours: 'mean ± std (n=seeds)' plus '≈ chance' / '< chance' and failures; papers: as printed."""
    if r["source"] != OURS:
        return f"{r['mean']:g}"
    text = ""
    if r["n"]:
        std = DASH if math.isnan(r["std"]) else f" {r['std']:.2f}"
        text = f"{r['mean']:.2f} ±{std} (n={r['n']})" + (f" {flag}" if flag else "")
    return "; ".join(x for x in (text, r["failed"]) if x)


def _chance_cell(r: dict) -> str:
    """The chance row's cell, e.g. '50.00 (majority, SE 2.48)': what predicting the majority class scores."""
    how = {"accuracy": "majority", "f1": "all-majority", "mcc": "all-majority"}.get(r["metric"], "constant")
    return f"{r['chance']:.2f} ({how}, SE {r['chance_se']:.2f})"


def _label(r: dict, cols: list[str]) -> str:
    s = f"{r['source_task']}→{r['task']}" if "source_task" in cols and r["source_task"] else r["task"]
    s += f" {r['metric']}"
    s += f" ({r['split']})" if "split" in cols else ""
    return s + (f" [{r['protocol']}]" if "protocol" in cols and r["protocol"] else "")


def _rank(method: str) -> int:
    return METHODS.index(method) if method in METHODS else len(METHODS)


def _task_rank(task: str) -> int:
    return GLUE_ORDER.index(task) if task in GLUE_ORDER else len(GLUE_ORDER) + task.startswith("embedded")


def _metric_rank(task, metric: str) -> int:
    return -1 if metric == task.main_metric else task.metrics.index(metric)


def column_parts(table: pd.DataFrame, size: int = PART) -> list[list[str]] | None:
    """Column lists splitting a wide table into parts of at most `size` task score groups (score, Δ, ret%), each
    with the row keys and params/GFLOPs/latency columns; avg and note go with the last. None if one part fits."""
    scores = table.attrs.get("scores") or []
    groups = [[c for c in (s, s + " Δ", s + " ret%") if c in table.columns] for s in scores]
    if len(groups) <= size:
        return None
    grouped = {c for g in groups for c in g}
    tail = [c for c in ("avg", "note") if c in table.columns]
    fixed = [c for c in table.columns if c not in grouped and c not in tail]
    chunks = [groups[i:i + size] for i in range(0, len(groups), size)]
    return [fixed + [c for g in chunk for c in g] + (tail if i == len(chunks) - 1 else [])
            for i, chunk in enumerate(chunks)]


# ------------------------------------------------------------------------------------------------- write all
BUILDERS = {"glue": glue_table, "squad": squad_table, "ood": ood_table, "lm": lm_table, "ablation": ablation_table}


def table_all(rows_path, out_dir) -> list[Path]:
    """Every table as <out_dir>/<name>.{md,csv,tex} plus summary.*; a table without rows of ours says so."""
    df, out, paths = load_rows(rows_path), Path(out_dir), []
    for name, build in BUILDERS.items():
        table = build(df)
        title, note = table.attrs["title"], table.attrs["note"]
        if not table.attrs["ours"]:
            table = pd.DataFrame({"message": [f"no rows for this table in {rows_path}"]})
        paths += write_table(table, out / name, title, note, parts=column_parts(table))
    summary = summarize(df).replace("", DASH)
    if not len(summary):
        summary = pd.DataFrame({"message": [f"no rows in {rows_path}"]})
    paths += write_table(summary, out / "summary", "All results, one row per cell (summarize)",
                         "mean/std over seeds (std ddof=1, NaN when n=1); failed: runs without a score and why.")
    return paths

