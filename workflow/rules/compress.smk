# ---------------------------------------------------------------------------------------------------- compress
rule compress:
    """student0 = compress(base, preset): NKP initialisation, deterministic (SVD), so seed- and task-independent."""
    input:
        base=plan("base_inputs", "model"),
    output:
        f"{R}/runs/{{model}}/_general/kronecker-{{preset}}/compressed/summary.json",
    log:
        f"{R}/logs/compress/{{model}}/{{preset}}.log",
    benchmark:
        f"{R}/benchmarks/compress/{{model}}/{{preset}}.tsv"
    threads: TORCH_THREADS
    params:
        base=plan("base_model", "model"),
        head=lambda w: f"--head {MODELS[w.model]['head']}" if MODELS[w.model]["head"] else "",
        run=lambda w, output: run_dir(output),
    message:
        "Compressing {wildcards.model} with preset {wildcards.preset}"
    conda:
        ENV
    shell:
        "kronbench compress --model {params.base:q} --preset {wildcards.preset:q} {params.head} --out {params.run:q} "
        "--label {wildcards.model} > {log} 2>&1"
