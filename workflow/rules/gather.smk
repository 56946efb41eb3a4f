# ------------------------------------------------------------------------------------------------------ gather
rule gather:
    """All rows files of the grid -> results/all_results.jsonl (validated line by line, written atomically), the
    only input of tables and figures; plus metrics.json (mean main-metric score per cell) for `dvc metrics`."""
    input:
        rows=P.experiment_rows(),
        latency=P.latency_files(),
    output:
        rows=f"{R}/all_results.jsonl",
        metrics=f"{T}/metrics.json",
    log:
        f"{R}/logs/gather.log",
    message:
        "Gathering {params.n} rows files"
    params:
        n=lambda w, input: len(input.rows),
    conda:
        ENV
    shell:
        "kronbench gather --out {output.rows:q} --metrics {output.metrics:q} --latency {input.latency:q} "
        "-- {input.rows:q} > {log} 2>&1"
