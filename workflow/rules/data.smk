# ------------------------------------------------------------------------------------------------ prepare_data
rule prepare_data:
    """Prepared splits of one task (<split>.parquet + manifest.json) from its configured source (data.source).

    manifest.json is written last, inside the directory that `kronbench data prepare` swaps in atomically; it is
    the declared output. update(): Snakemake must not delete it before a rerun, because prepare only replaces a
    directory that holds its manifest (or is empty). Small (< 1 MB), it is checksummed, so a `dvc checkout` of
    results/data (new mtimes, same content) does not make the downstream jobs rerun (see profiles/default).
    """
    output:
        update(f"{R}/data/{{task}}/manifest.json"),
    log:
        f"{R}/logs/prepare_data/{{task}}.log",
    benchmark:
        f"{R}/benchmarks/prepare_data/{{task}}.tsv"
    params:
        source=lambda w: data_source(w.task),
        data_dir=lambda w: (f"--data-dir {shlex.quote(config['data']['data_dir'])}"
                            if data_source(w.task) == "local" else ""),
        out=lambda w: data_dir(w.task),
    message:
        "Preparing {wildcards.task} ({params.source})"
    conda:
        ENV
    shell:
        "kronbench data prepare {wildcards.task} --source {params.source} {params.data_dir} --out {params.out:q} "
        "> {log} 2>&1"
