# ---------------------------------------------------------------------------------------------------- compress
rule compress:
    """student0 = compress(base, preset): the Kronecker student of the base model's weights, by NKP or fitted to
    the layers' outputs on calibration text (stages.compress.init); seed- and task-independent. The chain is
    kronecker, or an init ablation's own student0 (kronbench.methods.CHAINS). Every student's summary reports
    its weight and held-out output errors beside NKP's."""
    input:
        plan("compress_inputs", "model", "preset", "chain"),  # the base model's run (if self-pretrained), the corpus
    output:
        f"{R}/runs/{{model}}/_general/{{chain}}-{{preset}}/compressed/summary.json",
    log:
        f"{R}/logs/compress/{{model}}/{{chain}}-{{preset}}.log",
    benchmark:
        f"{R}/benchmarks/compress/{{model}}/{{chain}}-{{preset}}.tsv"
    wildcard_constraints:
        chain=CHAIN_PATTERN,
    threads: TORCH_THREADS
    params:
        base=plan("base_model", "model"),
        head=lambda w: f"--head {MODELS[w.model]['head']}" if MODELS[w.model]["head"] else "",
        data=lambda w: P.paths.data_dir(P.calibration_corpus(w.model, w.preset, w.chain)),
        run=lambda w, output: run_dir(output),
        settings=lambda w: P.settings_arg(P.compress_settings(w.model, w.preset, w.chain)),
    message:
        "Compressing {wildcards.model} with preset {wildcards.preset} ({wildcards.chain})"
    conda:
        ENV
    shell:
        "kronbench compress --model {params.base:q} --preset {wildcards.preset:q} {params.head} --data {params.data:q} "
        "--out {params.run:q} --label {wildcards.model} --config {params.settings} > {log} 2>&1"
