# ------------------------------------------------------------------------------------------------- count_preset
rule count_preset:
    """Params and linear-layer FLOPs of one preset on one architecture (config only, no weights)."""
    output:
        f"{R}/counts/{{arch}}/{{preset}}.json",
    log:
        f"{R}/logs/count_preset/{{arch}}/{{preset}}.log",
    params:
        seq=config["count"]["seq"],
    conda:
        ENV
    shell:
        "kronbench count-preset --model {wildcards.arch} --preset {wildcards.preset:q} --seq {params.seq} --json "
        "> {output:q}.tmp 2> {log} && mv {output:q}.tmp {output:q}"
