# ------------------------------------------------------------------------------------------------------ figures
rule figures:
    """Score vs params / FLOPs / latency per model family (from all_results.jsonl) and the training curves of
    each model's first task and seed (their runs' log.jsonl)."""
    input:
        rows=f"{R}/all_results.jsonl",
        runs=[os.path.join(run, "summary.json") for run in P.training_logs().values()],
    output:
        [report(f"{T}/figures/{figure}.png", category="Figures") for figure in P.figures()],  # in --report
        expand(f"{T}/figures/{{figure}}.pdf", figure=P.figures()),
    log:
        f"{R}/logs/figures.log",
    params:
        logs=" ".join(shlex.quote(f"{label}={os.path.join(run, 'log.jsonl')}")
                      for label, run in P.training_logs().items()),
        out=lambda w, output: os.path.dirname(output[0]),
        families=",".join(P.figure_families()),
    conda:
        ENV
    shell:
        "kronbench figures --rows {input.rows:q} --logs {params.logs} --out {params.out:q} --families {params.families} > {log} 2>&1"
