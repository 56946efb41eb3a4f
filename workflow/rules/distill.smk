# -------------------------------------------------------------------------------------------- distill_pretrain
rule distill_pretrain:
    """student1 = distill --stage pretrain (student0, teacher = the pretrained base, data = kd_corpus): KD
    pre-training (KroneckerBERT stage 1, KnGPT2's light ILKD pre-training). Task-independent, one per seed. With
    stages.distill_pretrain.rounds this is the last run, continuing from distill_pretrain_round's."""
    input:
        student=pretrain_student,
        base=lambda w: base_inputs(w.model),
        data=data_done(config["kd_corpus"]),
        tokens=pretrain_tokens,
    output:
        f"{R}/runs/{{model}}/_general/kronecker-{{preset}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/distill_pretrain/{{model}}/{{preset}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/distill_pretrain/{{model}}/{{preset}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        student=lambda w, input: os.path.join(os.path.dirname(input.student), "model"),
        teacher=lambda w: base_model(w.model),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=pretrain_flags,
    message:
        "KD pre-training {wildcards.model} {wildcards.preset} on {params.data}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} distill --stage pretrain --student {params.student:q} --teacher {params.teacher:q} "
        "--data {params.data:q} --tokens {input.tokens:q} --out {params.run:q} --label {wildcards.model} "
        "--method kronecker {params.settings} {params.keep} > {log} 2>&1"


use rule distill_pretrain as distill_pretrain_round with:
    # Run <round> of a KD pre-training given as several runs (stages.distill_pretrain.rounds), the runs before the
    # last: the same command from the previous run's model, with that run's settings (pretrain_student/_flags).
    output:
        f"{R}/runs/{{model}}/_general/kronecker-{{preset}}/seed{{seed}}-round{{round}}/summary.json",
    log:
        f"{R}/logs/distill_pretrain/{{model}}/{{preset}}/seed{{seed}}-round{{round}}.log",
    benchmark:
        f"{R}/benchmarks/distill_pretrain/{{model}}/{{preset}}/seed{{seed}}-round{{round}}.tsv"
    wildcard_constraints:
        round=r"[1-9]\d*",
    message:
        "KD pre-training {wildcards.model} {wildcards.preset}, run {wildcards.round}, seed {wildcards.seed}"


# ------------------------------------------------------------------------------------------------ distill_task
rule distill_task:
    """student2 = distill --stage task (student1, teacher = the fine-tuned teacher, task): task ILKD
    (KroneckerBERT stage 2); the student's prediction layer starts from the teacher's."""
    input:
        student=f"{R}/runs/{{model}}/_general/kronecker-{{preset}}/seed{{seed}}/summary.json",
        teacher=f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
        data=lambda w: data_done(w.task),
        transfer=lambda w: transfer_input(w),
    output:
        f"{R}/runs/{{model}}/{{task}}/kronecker-{{preset}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/distill_task/{{model}}/{{task}}/{{preset}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/distill_task/{{model}}/{{task}}/{{preset}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        student=lambda w, input: os.path.join(os.path.dirname(input.student), "model"),
        teacher=lambda w, input: os.path.join(os.path.dirname(input.teacher), "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=lambda w: stage_flags("distill_task", w.model, preset=w.preset, task=w.task, seed=w.seed),
    message:
        "Task ILKD of {wildcards.model} {wildcards.preset} on {wildcards.task}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} distill --stage task --student {params.student:q} --teacher {params.teacher:q} "
        "--data {params.data:q} --out {params.run:q} --label {wildcards.model} --method kronecker "
        "{params.settings} {params.keep} > {log} 2>&1"
