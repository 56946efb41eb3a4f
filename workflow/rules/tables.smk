# ----------------------------------------------------------------------------------------------- table_presets
rule table_presets:
    """Table 1 analog: shapes, params and FLOPs per preset, with the paper's reported numbers beside ours."""
    input:
        P.count_targets(),
    output:
        md=f"{T}/presets.md",
        csv=f"{T}/presets.csv",
        tex=f"{T}/presets.tex",
    log:
        f"{R}/logs/table_presets.log",
    params:
        prefix=lambda w, output: os.path.splitext(output.md)[0],
    conda:
        ENV
    shell:
        "kronbench table-presets {input:q} --out {params.prefix:q} > {log} 2>&1"


# ---------------------------------------------------------------------------------------------------- table_all
rule table_all:
    """GLUE/SQuAD/OOD/LM/ablation tables and the per-cell summary, pure functions of all_results.jsonl, each as
    .md, .csv and .tex, next to the papers' reported rows."""
    input:
        f"{R}/all_results.jsonl",
    output:
        expand(f"{T}/{{table}}.{{ext}}", table=TABLES, ext=["md", "csv", "tex"]),
    log:
        f"{R}/logs/table_all.log",
    params:
        out=lambda w, output: os.path.dirname(output[0]) + os.sep,
    conda:
        ENV
    shell:
        "kronbench table-all --rows {input:q} --out {params.out:q} > {log} 2>&1"
