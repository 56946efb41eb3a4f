# Baselines (models.<m>.baselines; kronbench/baselines/stages.py): baseline_distil makes the distil student, whose
# task stage is distill_task's (run distil); baseline_rosita makes a finished ROSITA student from the teacher.


# ---------------------------------------------------------------------------------------------- baseline_distil
rule baseline_distil:
    """DistilBERT/DistilGPT2-style student: the pretrained base with half its blocks (alternate layers), KD-pretrained
    on kd_corpus against the base. Task-independent, one per seed, like the Kronecker student1."""
    input:
        base=plan("base_inputs", "model"),
        data=P.data_done(config["kd_corpus"]),
        tokens=lambda w: P.corpus_tokens(w.model, P.distil_settings(w.model, w.seed)),
    output:
        f"{R}/runs/{{model}}/_general/distil/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/baseline_distil/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/baseline_distil/{{model}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        teacher=plan("base_model", "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.distil_settings(w.model, w.seed)),
    message:
        "Distil baseline of {wildcards.model}: KD pre-training on {params.data}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} baseline-distil --teacher {params.teacher:q} --data {params.data:q} --tokens {input.tokens:q} "
        "--out {params.run:q} --label {wildcards.model} --config {params.settings} {params.keep} > {log} 2>&1"


# ---------------------------------------------------------------------------------------------- baseline_rosita
rule baseline_rosita:
    """ROSITA-style student of the fine-tuned teacher: depth pruning, then iterative width pruning with KD, at the
    budget of rosita.targets (the row's preset names the Kronecker preset it is compared with). The stage fails
    unless the pruned backbone is within 5% of the targets' parameter count."""
    input:
        teacher=f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
        data=plan("data_done", "task"),
    output:
        f"{R}/runs/{{model}}/{{task}}/rosita-{{preset}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/baseline_rosita/{{model}}/{{task}}/{{preset}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/baseline_rosita/{{model}}/{{task}}/{{preset}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        teacher=lambda w, input: model_dir(input.teacher),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.settings("baseline_rosita", w.model, w.preset, w.task, w.seed)),
    message:
        "ROSITA baseline of {wildcards.model} at {wildcards.preset}'s budget on {wildcards.task}, seed "
        "{wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} baseline-rosita --teacher {params.teacher:q} --data {params.data:q} --out {params.run:q} "
        "--label {wildcards.model} --preset {wildcards.preset:q} --config {params.settings} {params.keep} "
        "> {log} 2>&1"
