"""Figures stay legible with many series: colour, line style and marker all vary (issue 18)."""

import json

import pandas as pd

from kronbench.report import figures
from kronbench.report.tables import load_rows


def test_style_cycle_varies_line_style_and_marker_not_colour_alone():
    looks = [figures.style(i) for i in range(28)]
    assert len({(s["linestyle"], s["marker"]) for s in looks}) == 28
    assert len({s["color"] for s in looks[:20]}) == 20 and looks[0]["color"] == looks[20]["color"]


def test_twelve_training_curves_use_several_line_styles_and_markers():
    curves = {f"run{i}": pd.DataFrame({"step": range(20), "loss": [5.0 - 0.1 * s - 0.01 * i for s in range(20)],
                                       "lr": [1e-4] * 20}) for i in range(12)}
    lines = figures.curves_figure(curves).axes[0].get_lines()
    assert len(lines) == 12
    assert len({ln.get_linestyle() for ln in lines}) >= 2 and len({ln.get_marker() for ln in lines}) >= 2
    assert len({(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}) == 12
    assert len({str(ln.get_color()) for ln in lines}) == 12  # tab20: no wrap after 10 colours


def test_score_vs_latency_marks_noisy_points(tmp_path):
    base = dict(model="bert-base-uncased", preset=None, task="rte", split="validation", seed=0, metric="accuracy",
                params=1e8, params_no_head=1e8, flops=1e9, latency_setup="cpu", train_seconds=1.0, config_hash="h",
                git_sha="g", versions={}, protocol=None, source_task=None)
    rows = [{**base, "method": "teacher", "value": 70.0, "latency_ms": 10.0, "latency_noisy": False},
            {**base, "method": "kronecker", "preset": "kb8", "value": 65.0, "latency_ms": 4.0, "latency_noisy": True}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert figures._noisy(pd.DataFrame({"latency_noisy": [True, False, None]}), "latency_ms") == [True, False, False]
    assert figures._noisy(pd.DataFrame({"latency_noisy": [True]}), "params") == [False]
    paths = figures.score_vs(load_rows(path), "latency_ms", tmp_path / "f")
    assert all(p.stat().st_size for p in paths)
