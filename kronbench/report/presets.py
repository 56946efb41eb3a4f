"""Table 1 analog: each preset's shapes, params and FLOPs (ours, counted) beside the paper's reported numbers."""

from __future__ import annotations

import json
from importlib import resources

import pandas as pd
import yaml

NOTE = ("Params: BertModel incl. pooler / GPT2LMHeadModel, LlamaForCausalLM with the LM head tied. FLOPs: the "
        "encoder's linear layers at {seq} tokens, Eq. 7 counting. A shapes are (m1, n1) in weight order (out, in); "
        "the paper's Table 1 prints (n1, m1). KB5 reads '#sums 4' as applying to the linear layers only.")


def reported() -> pd.DataFrame:
    text = resources.files("kronbench.report").joinpath("reported.yaml").read_text()
    return pd.DataFrame(yaml.safe_load(text)["presets"])


def _shape(spec: dict, fam: str) -> str:
    v = spec.get(fam)
    if v is None:
        return "dense"
    shape = v.get("a_shape")
    if isinstance(shape, dict):  # per module (GQA): "q 24×24, k 8×24, ..." by the module's last name
        s = ", ".join(f"{sub.rsplit('.', 1)[-1]} {'×'.join(map(str, a))}" for sub, a in shape.items())
    else:
        s = f"n={v['n']}" if "n" in v else "×".join(map(str, shape))
    s += f" r{v['rank']}" if v.get("rank", 1) != 1 else ""
    return s + (f" ({v['layers']})" if v.get("layers", "all") != "all" else "")


def presets_table(rows: list[dict]) -> pd.DataFrame:
    paper = reported().set_index(["model", "preset"])
    out = []
    for r in sorted(rows, key=lambda r: (r["model"], -r["params"])):
        ref = paper.loc[(r["model"], r["preset"])] if (r["model"], r["preset"]) in paper.index else None
        out.append({
            "model": r["model"], "preset": r["preset"],
            **{fam: _shape(r["spec"], fam) for fam in ("embedding", "attention", "ffn_in", "ffn_out")},
            "params (M)": round(r["params"] / 1e6, 3), "teacher params (M)": round(r["teacher_params"] / 1e6, 3),
            "GFLOPs": round(r["flops"] / 1e9, 3), "CF": round(r["compression_factor"], 2),
            "paper params (M)": None if ref is None else ref["params_m"],
            "paper GFLOPs": None if ref is None else ref["gflops"],
            "Δ params (M)": None if ref is None else round(r["params"] / 1e6 - ref["params_m"], 3),
            "source": "" if ref is None else ref["source"],
        })
    return pd.DataFrame(out).astype(object).fillna("–")  # "–": the paper reports no such number


def load_rows(paths) -> list[dict]:
    return [json.loads(open(p).read()) for p in paths]


def table_presets(paths, prefix) -> list:
    """Rule table_presets: the count_preset JSON files -> <prefix>.md, .csv, .tex (KroneckerBERT Table 1 analog)."""
    from kronbench.report.io import write_table

    rows = load_rows(paths)
    return write_table(presets_table(rows), prefix, "Compression presets (KroneckerBERT Table 1 analog)",
                       NOTE.format(seq=rows[0]["seq"]))
