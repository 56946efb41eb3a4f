rule table_presets:
    """Table 1 analog: shapes, params and FLOPs per preset, with the paper's reported numbers beside ours."""
    input:
        count_targets(),
    output:
        md="paper_tables/presets.md",
        csv="paper_tables/presets.csv",
        tex="paper_tables/presets.tex",
    log:
        "results/logs/tables/presets.log",
    conda:
        "../envs/kronbench.yaml"
    shell:
        "{KB} table presets --out paper_tables/presets {input} 2> {log}"
