rule count_preset:
    """Params and linear-layer FLOPs of one preset on one architecture (config only, no weights)."""
    output:
        "results/counts/{model}/{preset}.json",
    log:
        "results/logs/count/{model}/{preset}.log",
    params:
        seq=config["count"]["seq"],
    conda:
        "../envs/kronbench.yaml"
    shell:
        "{KB} count --model {wildcards.model} --preset {wildcards.preset} --seq {params.seq} --json "
        "> {output}.tmp 2> {log} && mv {output}.tmp {output}"
