# ------------------------------------------------------------------------------------------------- pretrain_lm
rule pretrain_lm:
    """The self-pretrained GPT-2 base of the embedded default (models.<model>.pretrain): BPE tokenizer and GPT-2
    from scratch on an LM corpus. Task-independent; its model/ is the base (and LM teacher) of every chain."""
    input:
        data=lambda w: P.data_done(MODELS[w.model]["pretrain"]["data"]),
    output:
        f"{R}/runs/{{model}}/_general/teacher/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/pretrain_lm/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/pretrain_lm/{{model}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        arch=lambda w: MODELS[w.model]["pretrain"]["arch"],
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.settings("pretrain_lm", w.model, seed=w.seed)),
    message:
        "Pre-training the {wildcards.model} base ({params.arch}), seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} pretrain-lm --arch {params.arch} --data {params.data:q} --out {params.run:q} "
        "--label {wildcards.model} --config {params.settings} {params.keep} > {log} 2>&1"
