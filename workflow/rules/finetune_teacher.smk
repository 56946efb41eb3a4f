# -------------------------------------------------------------------------------------------- finetune_teacher
rule finetune_teacher:
    """teacher = finetune-teacher(base, task), one per (model, task, seed)."""
    input:
        base=lambda w: base_inputs(w.model),
        data=lambda w: data_done(w.task),
    output:
        f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/finetune_teacher/{{model}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/finetune_teacher/{{model}}/{{task}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        base=lambda w: base_model(w.model),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=lambda w: stage_flags("finetune_teacher", w.model, task=w.task, seed=w.seed),
    message:
        "Fine-tuning the {wildcards.model} teacher on {wildcards.task}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} finetune-teacher --model {params.base:q} --data {params.data:q} --out {params.run:q} "
        "--label {wildcards.model} {params.settings} {params.keep} > {log} 2>&1"
