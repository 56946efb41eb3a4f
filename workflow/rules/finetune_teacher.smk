# -------------------------------------------------------------------------------------------- finetune_teacher
rule finetune_teacher:
    """teacher = finetune_teacher(base, task), one per (model, task, seed)."""
    input:
        base=plan("base_inputs", "model"),
        data=plan("data_done", "task"),
    output:
        f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/finetune_teacher/{{model}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/finetune_teacher/{{model}}/{{task}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        base=plan("base_model", "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.settings("finetune_teacher", w.model, task=w.task, seed=w.seed)),
    message:
        "Fine-tuning the {wildcards.model} teacher on {wildcards.task}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} finetune-teacher --model {params.base:q} --data {params.data:q} --out {params.run:q} "
        "--label {wildcards.model} --config {params.settings} {params.keep} > {log} 2>&1"
